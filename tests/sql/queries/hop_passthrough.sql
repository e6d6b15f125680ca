-- a HOP window table function without aggregation: one row per window a row is in, with a condition on window_start

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

SELECT ts, camera, label, window_start, window_end
FROM TABLE(HOP(TABLE detections, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
WHERE label = 'fire' AND window_start >= CAST('2026-05-01 09:00:30' AS TIMESTAMP(3));
