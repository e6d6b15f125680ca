SELECT
    ts AS alert_time,
    district,
    camera,
    CAST(CASE label WHEN 'fire' THEN 3 WHEN 'collision' THEN 2 ELSE 1 END AS INT) AS severity,
    confidence,
    CAST(track_id AS VARCHAR) AS track
FROM detections
WHERE label IN ('fire', 'collision', 'smoke') AND confidence > 0.6
