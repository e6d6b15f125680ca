WITH ordered AS (
    SELECT *, epoch_ms(dateTime) AS t, lag(epoch_ms(dateTime)) OVER (PARTITION BY bidder ORDER BY dateTime) AS previous
    FROM bid
),
numbered AS (
    SELECT *, sum(CASE WHEN previous IS NULL OR t - previous >= 5000 THEN 1 ELSE 0 END)
        OVER (PARTITION BY bidder ORDER BY t ROWS UNBOUNDED PRECEDING) AS session
    FROM ordered
)
SELECT
    bidder,
    epoch_ms(min(t)) AS session_start,
    epoch_ms(max(t) + 5000) AS session_end,
    count(*) AS bids,
    sum(price) AS spent
FROM numbered
GROUP BY bidder, session
