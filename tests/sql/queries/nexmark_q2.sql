-- Nexmark q2 (selection): a filter with MOD on a key column

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

SELECT auction, price
FROM bid
WHERE MOD(auction, 7) = 0;
