-- SESSION window table function with PARTITION BY (gap 8 s) aggregated per session and key

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
    window_start,
    window_end,
    camera,
    COUNT(*) AS detections,
    COUNT(DISTINCT label) AS labels,
    MAX(confidence) AS peak_confidence,
    MIN(track_id) AS first_track
FROM TABLE(SESSION(TABLE detections PARTITION BY camera, DESCRIPTOR(ts), INTERVAL '8' SECOND))
GROUP BY window_start, window_end, camera;
