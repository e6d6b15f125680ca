-- MOD and % of negative values: the sign of the dividend, as in Flink (Java's %) and standard SQL: MOD(-10, 7) = -3

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
    track_id,
    -track_id % 7 AS negative_mod,
    MOD(-track_id, 5) AS negative_mod_function,
    MOD(track_id, -7) AS negative_divisor
FROM detections
WHERE label = 'fire';
