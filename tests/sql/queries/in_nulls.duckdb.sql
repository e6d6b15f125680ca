SELECT
    ts,
    camera,
    zone_kind IN ('school', 'road') AS at_school_or_road,
    zone_kind IN ('school', NULL) AS school_or_unknown,
    substring(camera, -2) AS camera_number,
    substring(camera, -5, 2) AS camera_district,
    dayofweek(ts) + 1 AS day_of_week
FROM detections
WHERE zone_kind NOT IN ('crosswalk', 'park')
