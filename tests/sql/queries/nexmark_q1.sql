-- Nexmark q1 (currency conversion): a projection with DOUBLE arithmetic over an INT column

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

SELECT auction, bidder, 0.908 * price AS price, dateTime, extra
FROM bid;
