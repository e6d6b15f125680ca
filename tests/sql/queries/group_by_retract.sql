-- updating GROUP BY whose HAVING stops holding for some keys (they are deleted), grouped by an expression and a column, aggregates of expressions

CREATE TABLE bid (
    auction BIGINT,
    bidder BIGINT,
    price BIGINT,
    channel STRING,
    url STRING,
    dateTime TIMESTAMP(3),
    extra STRING,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '1' SECOND
) WITH ('connector' = 'file', 'path' = '../data/bids.csv', 'format' = 'csv', 'batch.size' = '20');

SELECT
    channel,
    CASE WHEN price >= 5000 THEN 'high' ELSE 'low' END AS price_band,
    COUNT(*) AS bids,
    SUM(price / 100) AS hundreds,
    MAX(price) - MIN(price) AS spread
FROM bid
GROUP BY channel, CASE WHEN price >= 5000 THEN 'high' ELSE 'low' END
HAVING MAX(price) < 9900;
