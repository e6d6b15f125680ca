SELECT b.auction, b.bidder, b.price, b.dateTime AS bid_time, a.itemName, a.dateTime AS listed_at, b.price - a.initialBid AS over_initial
FROM bid AS b
JOIN auction AS a ON b.auction = a.id AND b.dateTime BETWEEN a.dateTime AND a.dateTime + INTERVAL 10 SECOND
