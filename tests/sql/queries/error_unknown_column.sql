-- error: unknown column 'confidnce' in WHERE
-- error: columns in scope: detections.ts, detections.camera, detections.district, detections.track_id, detections.label, detections.confidence, detections.zone_kind
-- at: confidnce

CREATE TABLE detections (
    ts TIMESTAMP(3),
    camera STRING,
    district STRING,
    track_id BIGINT,
    label STRING,
    confidence DOUBLE,
    zone_kind STRING,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'path' = '../data/detections.csv', 'format' = 'csv', 'batch.size' = '16');

SELECT ts, camera FROM detections WHERE confidnce > 0.5;
