-- group-window form: GROUP BY TUMBLE(ts, size), key with TUMBLE_START and TUMBLE_END in SELECT

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
    TUMBLE_START(ts, INTERVAL '20' SECOND) AS window_start,
    TUMBLE_END(ts, INTERVAL '20' SECOND) AS window_end,
    label,
    COUNT(*) AS detections,
    AVG(confidence) AS avg_confidence,
    COUNT(DISTINCT district) AS districts
FROM detections
GROUP BY TUMBLE(ts, INTERVAL '20' SECOND), label;
