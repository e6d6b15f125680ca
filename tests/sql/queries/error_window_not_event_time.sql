-- error: 'expires' is not the event-time column of this relation
-- error: the event time: 'dateTime'
-- at: expires

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

SELECT window_start, window_end, COUNT(*) AS auctions
FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(expires), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
