-- REPLACE(string, search, replacement), Flink's three-argument string function

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

SELECT
    ts,
    camera,
    REPLACE(camera, 'cam-', 'camera/') AS camera_url,
    REPLACE(label, 'o', '0') AS leet_label
FROM detections
WHERE label IN ('smoke', 'collision');
