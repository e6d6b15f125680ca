WITH assigned AS (
    SELECT *, unnest(generate_series((epoch_ms(ts) - 10000) // 5000 + 1, epoch_ms(ts) // 5000)) * 5000 AS ws
    FROM detections
)
SELECT ts, camera, label, epoch_ms(ws) AS window_start, epoch_ms(ws + 10000) AS window_end
FROM assigned
WHERE label = 'fire' AND epoch_ms(ws) >= TIMESTAMP '2026-05-01 09:00:30'
