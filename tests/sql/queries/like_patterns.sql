-- LIKE and NOT LIKE with % and _ wildcards, in WHERE and as a boolean column

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
    zone_kind,
    zone_kind LIKE '%o%' AS has_o
FROM detections
WHERE camera LIKE 'cam-so-%' AND label NOT LIKE 'p%' AND camera LIKE '%-0_';
