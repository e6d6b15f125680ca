WITH assigned AS (
    SELECT *, unnest(generate_series((epoch_ms(dateTime) - 15000) // 5000 + 1, epoch_ms(dateTime) // 5000)) * 5000 AS ws
    FROM bid
)
SELECT
    epoch_ms(ws) AS window_start,
    epoch_ms(ws + 15000) AS window_end,
    channel,
    count(*) AS bids,
    sum(price) AS volume,
    max(price) AS top_price
FROM assigned
GROUP BY ws, channel
