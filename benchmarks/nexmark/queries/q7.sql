-- -------------------------------------------------------------------------------------------------
-- Query 7: Highest Bid
-- -------------------------------------------------------------------------------------------------
-- What are the highest bids per period?
-- Deliberately implemented using a side input to illustrate fanout: the maximum price of each
-- 10-second tumbling window, joined back to the bids of that window's span.
--
-- The original Nexmark Query 7 finds the highest bids of the last minute; Flink's version (kept
-- here) uses windows of 10 seconds.
--
-- Flink text: nexmark/nexmark, nexmark-flink/src/main/resources/queries/q7.sql (the version with
-- window table functions).
-- Departures from it:
-- * The bid table is declared here with the 'nexmark' connector (one generator source per kind),
--   where Flink declares one 'datagen' table of nested person/auction/bid rows and selects each
--   kind in a view (ddl_gen.sql, ddl_views.sql). The columns are the same.
-- * The watermark allows 0 s of out-of-orderness instead of Flink's 4 s: our generator emits each
--   partition in order by default (NexmarkConfig.max_out_of_orderness_ms is 0 for the default
--   out_of_order_group_size of 1), so no row is late; Flink's 4 s covers its parallel sources.
-- The INSERT is Flink's text.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE bid (
  auction  BIGINT,
  bidder  BIGINT,
  price  BIGINT,
  channel  VARCHAR,
  url  VARCHAR,
  dateTime  TIMESTAMP(3),
  extra  VARCHAR,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '0' SECOND
) WITH (
  'connector' = 'nexmark',
  'kind' = 'bid'
);

CREATE TABLE nexmark_q7 (
  auction  BIGINT,
  bidder  BIGINT,
  price  BIGINT,
  dateTime  TIMESTAMP(3),
  extra  VARCHAR
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q7
SELECT B.auction, B.bidder, B.price, B.dateTime, B.extra
from bid B
JOIN (
  SELECT MAX(price) AS maxprice, window_end as dateTime
  FROM TABLE(
          TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.price = B1.maxprice
WHERE B.dateTime BETWEEN B1.dateTime  - INTERVAL '10' SECOND AND B1.dateTime;
