-- time functions: EXTRACT (HOUR, MINUTE, SECOND, EPOCH), HOUR, MINUTE, DATE_FORMAT, ts + INTERVAL, ts - INTERVAL, comparison with a TIMESTAMP literal

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
    EXTRACT(HOUR FROM ts) AS h,
    EXTRACT(MINUTE FROM ts) AS m,
    EXTRACT(SECOND FROM ts) AS s,
    EXTRACT(EPOCH FROM ts) AS epoch_seconds,
    HOUR(ts) AS hour_of_day,
    MINUTE(ts) AS minute_of_hour,
    DATE_FORMAT(ts, 'HH:mm') AS clock,
    ts + INTERVAL '90' SECOND AS deadline,
    ts - INTERVAL '1' MINUTE AS a_minute_before,
    ts + INTERVAL '250' MILLISECOND AS nudged
FROM detections
WHERE label IN ('fire', 'collision') AND ts >= CAST('2026-05-01 09:00:30' AS TIMESTAMP(3));
