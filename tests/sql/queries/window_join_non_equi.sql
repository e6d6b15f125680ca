-- a join of two windowed aggregates with a non-equi condition (hot items as in Nexmark q5, window columns kept under their names, via views): auctions whose bid count per HOP window is the window's maximum

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

CREATE VIEW auction_bids AS
SELECT auction, COUNT(*) AS num, window_start, window_end
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;

CREATE VIEW max_bids AS
SELECT MAX(num) AS maxn, window_start, window_end
FROM auction_bids
GROUP BY window_start, window_end;

SELECT a.auction, a.num, a.window_start, a.window_end
FROM auction_bids AS a
JOIN max_bids AS m ON a.window_start = m.window_start AND a.window_end = m.window_end AND a.num >= m.maxn;
