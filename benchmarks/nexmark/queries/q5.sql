-- -------------------------------------------------------------------------------------------------
-- Query 5: Hot Items
-- -------------------------------------------------------------------------------------------------
-- Which auctions have seen the most bids in the last period?
-- Illustrates sliding windows and combiners.
--
-- The original Nexmark Query 5 finds the hot items of the last hour (updated every minute);
-- Flink's version (kept here) uses windows of 10 seconds that slide every 2 seconds.
--
-- Flink text: nexmark/nexmark, nexmark-flink/src/main/resources/queries/q5.sql (the version with
-- window table functions, TABLE(HOP(...)); an older one used GROUP BY HOP(...)).
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

CREATE TABLE nexmark_q5 (
  auction  BIGINT,
  num  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q5
SELECT AuctionBids.auction, AuctionBids.num
 FROM (
   SELECT
     auction,
     count(*) AS num,
     window_start AS starttime,
     window_end AS endtime
     FROM TABLE(
             HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
     GROUP BY auction, window_start, window_end
 ) AS AuctionBids
 JOIN (
   SELECT
     max(CountBids.num) AS maxn,
     CountBids.starttime,
     CountBids.endtime
   FROM (
     SELECT
       count(*) AS num,
       window_start AS starttime,
       window_end AS endtime
     FROM TABLE(
                HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
     GROUP BY auction, window_start, window_end
     ) AS CountBids
   GROUP BY CountBids.starttime, CountBids.endtime
 ) AS MaxBids
 ON AuctionBids.starttime = MaxBids.starttime AND
    AuctionBids.endtime = MaxBids.endtime AND
    AuctionBids.num >= MaxBids.maxn;
