-- CREATE VIEW chaining: a view over a view over a table, then a TUMBLE window over the last view

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

CREATE VIEW scored AS
SELECT ts, district, camera, label, COALESCE(confidence, 0.5) AS conf
FROM detections
WHERE label <> 'person';

CREATE VIEW hazards AS
SELECT ts, district, camera, label, conf * 2 AS weight
FROM scored
WHERE label IN ('fire', 'smoke', 'collision');

SELECT window_start, window_end, district, COUNT(*) AS hazards, SUM(weight) AS total_weight, MAX(camera) AS last_camera
FROM TABLE(TUMBLE(TABLE hazards, DESCRIPTOR(ts), INTERVAL '30' SECOND))
GROUP BY window_start, window_end, district;
