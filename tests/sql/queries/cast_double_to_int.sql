-- CAST of a DOUBLE to INT/BIGINT truncates toward zero, as in Flink (CAST(0.987 * 100 AS INT) = 98)

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
    confidence,
    CAST(confidence * 100 AS INT) AS percent,
    CAST(-confidence * 10 AS BIGINT) AS negative_tenths
FROM detections
WHERE label = 'fire' AND confidence IS NOT NULL;
