-- TUMBLE window table function aggregated with GROUP BY window_start, window_end, key: COUNT(*), COUNT(x), COUNT(DISTINCT x), SUM, MIN, MAX, AVG (rows on window boundaries, out-of-order rows)

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
    district,
    COUNT(*) AS detections,
    COUNT(zone_kind) AS zoned,
    COUNT(DISTINCT label) AS labels,
    SUM(track_id) AS track_sum,
    MIN(confidence) AS min_confidence,
    MAX(confidence) AS max_confidence,
    AVG(confidence) AS avg_confidence
FROM TABLE(TUMBLE(TABLE detections, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, district;
