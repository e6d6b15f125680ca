-- interval join: bids on an auction within 10 s of its creation (ON keys AND b.dateTime BETWEEN a.dateTime AND a.dateTime + INTERVAL)

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

CREATE TABLE auction (
    id BIGINT,
    itemName STRING,
    description STRING,
    initialBid BIGINT,
    reserve BIGINT,
    dateTime TIMESTAMP(3),
    expires TIMESTAMP(3),
    seller BIGINT,
    category BIGINT,
    extra STRING,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '1' SECOND
) WITH ('connector' = 'file', 'path' = '../data/auctions.csv', 'format' = 'csv', 'batch.size' = '10');

SELECT b.auction, b.bidder, b.price, b.dateTime AS bid_time, a.itemName, a.dateTime AS listed_at, b.price - a.initialBid AS over_initial
FROM bid AS b
JOIN auction AS a ON b.auction = a.id AND b.dateTime BETWEEN a.dateTime AND a.dateTime + INTERVAL '10' SECOND;
