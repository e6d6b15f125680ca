-- CAST between numbers and strings, IN and NOT IN lists, BETWEEN and NOT BETWEEN, in SELECT and WHERE

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
    CAST(track_id AS DOUBLE) / 4 AS track_quarter,
    CAST(track_id AS STRING) AS track_text,
    CAST(CAST(track_id AS STRING) AS BIGINT) + 1 AS track_next,
    CAST(track_id AS INT) AS track_int,
    label IN ('fire', 'smoke') AS is_hazard,
    confidence BETWEEN 0.5 AND 0.7 AS is_middling
FROM detections
WHERE label IN ('vehicle', 'collision', 'fire') AND confidence BETWEEN 0.4 AND 0.95
    AND track_id NOT IN (101, 102, 103) AND confidence NOT BETWEEN 0.6 AND 0.65;
