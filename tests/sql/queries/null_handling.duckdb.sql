SELECT
    ts,
    camera,
    coalesce(zone_kind, 'unknown') AS zone,
    coalesce(confidence, 0.0) AS confidence_or_zero,
    nullif(label, 'person') AS non_person,
    nullif(track_id, 105) AS track_unless_105,
    confidence IS NULL AS missing_confidence,
    zone_kind IS NOT NULL AS has_zone,
    confidence * 2 AS doubled,
    confidence > 0.5 AS confident
FROM detections
WHERE confidence IS NULL OR zone_kind IS NULL OR label = 'collision'
