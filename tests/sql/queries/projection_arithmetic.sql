-- projections: arithmetic (+ - * /, INT / INT truncated), searched and simple CASE, comparisons, AND/OR/NOT with NULLs, in SELECT and WHERE

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
    track_id * 10 + 3 AS scaled_track,
    confidence * 100 - 50 AS score,
    track_id / 4 AS track_quarter,
    CASE WHEN confidence >= 0.8 THEN 'high' WHEN confidence >= 0.5 THEN 'medium' ELSE 'low' END AS band,
    CASE label WHEN 'fire' THEN 1 WHEN 'smoke' THEN 2 ELSE 0 END AS hazard_code,
    confidence > 0.5 AND label <> 'person' AS is_alert,
    confidence < 0.5 OR label = 'vehicle' AS is_doubtful,
    NOT (label = 'vehicle' OR label = 'person') AS is_incident,
    track_id >= 105 AND track_id <= 110 AS mid_track
FROM detections
WHERE (district = 'songdo' OR district = 'cheongna') AND NOT label = 'collision' AND track_id > 101;
