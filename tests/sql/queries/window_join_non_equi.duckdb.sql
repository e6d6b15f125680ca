WITH assigned AS (
    SELECT *, unnest(generate_series((epoch_ms(dateTime) - 10000) // 2000 + 1, epoch_ms(dateTime) // 2000)) * 2000 AS ws
    FROM bid
),
auction_bids AS (
    SELECT auction, count(*) AS num, epoch_ms(ws) AS window_start, epoch_ms(ws + 10000) AS window_end
    FROM assigned
    GROUP BY auction, ws
),
max_bids AS (
    SELECT max(num) AS maxn, window_start, window_end
    FROM auction_bids
    GROUP BY window_start, window_end
)
SELECT a.auction, a.num, a.window_start, a.window_end
FROM auction_bids AS a
JOIN max_bids AS m ON a.window_start = m.window_start AND a.window_end = m.window_end AND a.num >= m.maxn
