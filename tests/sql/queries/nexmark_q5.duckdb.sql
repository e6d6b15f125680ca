WITH assigned AS (
    SELECT *, unnest(generate_series((epoch_ms(dateTime) - 10000) // 2000 + 1, epoch_ms(dateTime) // 2000)) * 2000 AS ws
    FROM bid
),
AuctionBids AS (
    SELECT auction, count(*) AS num, epoch_ms(ws) AS starttime, epoch_ms(ws + 10000) AS endtime
    FROM assigned
    GROUP BY auction, ws
),
MaxBids AS (
    SELECT max(num) AS maxn, starttime, endtime
    FROM AuctionBids
    GROUP BY starttime, endtime
)
SELECT AuctionBids.auction, AuctionBids.num, AuctionBids.starttime, AuctionBids.endtime
FROM AuctionBids
JOIN MaxBids ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime AND AuctionBids.num >= MaxBids.maxn
