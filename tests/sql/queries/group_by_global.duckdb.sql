SELECT
    count(*) AS bids,
    count(DISTINCT bidder) AS bidders,
    count(extra) AS with_extra,
    sum(price) AS volume,
    min(price) AS lowest,
    max(price) AS highest,
    avg(price) AS average
FROM bid
