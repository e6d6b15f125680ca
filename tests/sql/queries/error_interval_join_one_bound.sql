-- error: an interval join needs a lower and an upper bound between the two event times
-- at: b.dateTime >= a.dateTime

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

SELECT b.auction, b.price, a.itemName
FROM bid AS b
JOIN auction AS a ON b.auction = a.id AND b.dateTime >= a.dateTime;
