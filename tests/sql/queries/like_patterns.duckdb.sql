SELECT
    ts,
    camera,
    zone_kind,
    zone_kind LIKE '%o%' AS has_o
FROM detections
WHERE camera LIKE 'cam-so-%' AND label NOT LIKE 'p%' AND camera LIKE '%-0_'
