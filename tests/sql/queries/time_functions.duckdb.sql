-- Flink's EXTRACT(SECOND) is the whole second, EXTRACT(EPOCH) whole seconds since 1970.
SELECT
    ts,
    hour(ts) AS h,
    minute(ts) AS m,
    second(ts) AS s,
    epoch_ms(ts) // 1000 AS epoch_seconds,
    hour(ts) AS hour_of_day,
    minute(ts) AS minute_of_hour,
    strftime(ts, '%H:%M') AS clock,
    ts + INTERVAL 90 SECOND AS deadline,
    ts - INTERVAL 1 MINUTE AS a_minute_before,
    ts + INTERVAL 250 MILLISECOND AS nudged
FROM detections
WHERE label IN ('fire', 'collision') AND ts >= TIMESTAMP '2026-05-01 09:00:30'
