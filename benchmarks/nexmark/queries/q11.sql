-- -------------------------------------------------------------------------------------------------
-- Query 11: User Sessions (not in the original suite)
-- -------------------------------------------------------------------------------------------------
-- How many bids did a user make in each session they were active? Illustrates session windows.
--
-- Group bids by the same user into sessions with a maximum gap of 10 seconds, and emit the number
-- of bids per session.
--
-- Flink text: nexmark/nexmark, nexmark-flink/src/main/resources/queries/q11.sql (the group-window
-- form, GROUP BY SESSION(...)).
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

CREATE TABLE nexmark_q11 (
  bidder  BIGINT,
  bid_count  BIGINT,
  starttime  TIMESTAMP(3),
  endtime  TIMESTAMP(3)
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q11
SELECT
    B.bidder,
    count(*) as bid_count,
    SESSION_START(B.dateTime, INTERVAL '10' SECOND) as starttime,
    SESSION_END(B.dateTime, INTERVAL '10' SECOND) as endtime
FROM bid B
GROUP BY B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND);
