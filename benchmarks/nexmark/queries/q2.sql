-- -------------------------------------------------------------------------------------------------
-- Query 2: Selection
-- -------------------------------------------------------------------------------------------------
-- Find bids with specific auction ids and show their bid price.
--
-- The original Nexmark Query 2 selects five fixed auction ids, which yields a few hundred results
-- over streams of any size; Flink's version (kept here) selects the bids of every 123rd auction.
--
-- Flink text: nexmark/nexmark, nexmark-flink/src/main/resources/queries/q2.sql.
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

CREATE TABLE nexmark_q2 (
  auction  BIGINT,
  price  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q2
SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
