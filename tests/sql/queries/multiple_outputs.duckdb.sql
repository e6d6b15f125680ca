-- output: big_bids
SELECT auction, price, dateTime FROM bid WHERE price > 9000;

-- output: result
SELECT channel, count(*) AS bids FROM bid GROUP BY channel;

-- output: result_2
SELECT
    time_bucket(INTERVAL 30 SECOND, dateTime) AS window_start,
    time_bucket(INTERVAL 30 SECOND, dateTime) + INTERVAL 30 SECOND AS window_end,
    count(*) AS bids,
    max(price) AS top_price
FROM bid
GROUP BY ALL
