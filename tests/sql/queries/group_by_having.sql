-- non-windowed GROUP BY (an updating result: the final row per key) with HAVING; COUNT(*), COUNT(x), COUNT(DISTINCT x), SUM, MIN, MAX, AVG

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
    district,
    label,
    COUNT(*) AS detections,
    COUNT(confidence) AS scored,
    COUNT(DISTINCT camera) AS cameras,
    SUM(track_id) AS track_sum,
    MIN(confidence) AS min_confidence,
    MAX(confidence) AS max_confidence,
    AVG(confidence) AS avg_confidence
FROM detections
GROUP BY district, label
HAVING COUNT(*) >= 5;
