-- an aggregate over the whole stream without GROUP BY (one updating row): COUNT(*), COUNT(DISTINCT), SUM, MIN, MAX, AVG

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
    COUNT(*) AS bids,
    COUNT(DISTINCT bidder) AS bidders,
    COUNT(extra) AS with_extra,
    SUM(price) AS volume,
    MIN(price) AS lowest,
    MAX(price) AS highest,
    AVG(price) AS average
FROM bid;
