-- INT / INT is an integer (truncated) in Flink.
SELECT
    ts,
    camera,
    track_id * 10 + 3 AS scaled_track,
    confidence * 100 - 50 AS score,
    track_id // 4 AS track_quarter,
    CASE WHEN confidence >= 0.8 THEN 'high' WHEN confidence >= 0.5 THEN 'medium' ELSE 'low' END AS band,
    CASE label WHEN 'fire' THEN 1 WHEN 'smoke' THEN 2 ELSE 0 END AS hazard_code,
    confidence > 0.5 AND label <> 'person' AS is_alert,
    confidence < 0.5 OR label = 'vehicle' AS is_doubtful,
    NOT (label = 'vehicle' OR label = 'person') AS is_incident,
    track_id >= 105 AND track_id <= 110 AS mid_track
FROM detections
WHERE (district = 'songdo' OR district = 'cheongna') AND NOT label = 'collision' AND track_id > 101
