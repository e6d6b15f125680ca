-- DATE_FORMAT with Flink's (Java) patterns: 'ss' is whole seconds, 'SSS' the milliseconds

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
    DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm:ss') AS formatted,
    DATE_FORMAT(ts, 'HH:mm:ss.SSS') AS with_millis,
    DATE_FORMAT(ts, 'yyyyMMdd') AS day
FROM detections
WHERE label = 'collision';
