SELECT
    ts,
    track_id,
    -track_id % 7 AS negative_mod,
    (-track_id) % 5 AS negative_mod_function,
    track_id % -7 AS negative_divisor
FROM detections
WHERE label = 'fire'
