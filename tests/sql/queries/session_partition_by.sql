-- SESSION with PARTITION BY: sessions per district even when the query does not group by it

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

SELECT window_start, window_end, COUNT(*) AS detections
FROM TABLE(SESSION(TABLE detections PARTITION BY district, DESCRIPTOR(ts), INTERVAL '3' SECOND))
GROUP BY window_start, window_end;
