SELECT
    epoch_ms(epoch_ms(ts) // 20000 * 20000) AS window_start,
    epoch_ms(epoch_ms(ts) // 20000 * 20000 + 20000) AS window_end,
    label,
    count(*) AS detections,
    avg(confidence) AS avg_confidence,
    count(DISTINCT district) AS districts
FROM detections
GROUP BY epoch_ms(ts) // 20000, label
