SELECT
    ts,
    strftime(ts, '%Y-%m-%d %H:%M:%S') AS formatted,
    strftime(ts, '%H:%M:%S.%g') AS with_millis,
    strftime(ts, '%Y%m%d') AS day
FROM detections
WHERE label = 'collision'
