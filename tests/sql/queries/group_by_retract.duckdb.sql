SELECT
    channel,
    CASE WHEN price >= 5000 THEN 'high' ELSE 'low' END AS price_band,
    count(*) AS bids,
    sum(price // 100) AS hundreds,
    max(price) - min(price) AS spread
FROM bid
GROUP BY channel, CASE WHEN price >= 5000 THEN 'high' ELSE 'low' END
HAVING max(price) < 9900
