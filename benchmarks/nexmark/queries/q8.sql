-- -------------------------------------------------------------------------------------------------
-- Query 8: Monitor New Users
-- -------------------------------------------------------------------------------------------------
-- Select people who have entered the system and created auctions in the last period.
-- Illustrates a simple join: a window join of 10-second tumbling windows of persons and auctions.
--
-- The original Nexmark Query 8 monitors the new users of the last 12 hours, updated every 12
-- hours; Flink's version (kept here) uses windows of 10 seconds.
--
-- Flink text: nexmark/nexmark, nexmark-flink/src/main/resources/queries/q8.sql (the version with
-- window table functions).
-- Departures from it:
-- * The person and auction tables are declared here with the 'nexmark' connector (one generator
--   source per kind), where Flink declares one 'datagen' table of nested person/auction/bid rows
--   and selects each kind in a view (ddl_gen.sql, ddl_views.sql). The columns are the same.
-- * The watermarks allow 0 s of out-of-orderness instead of Flink's 4 s: our generator emits each
--   partition in order by default (NexmarkConfig.max_out_of_orderness_ms is 0 for the default
--   out_of_order_group_size of 1), so no row is late; Flink's 4 s covers its parallel sources.
-- The INSERT is Flink's text.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE person (
  id  BIGINT,
  name  VARCHAR,
  emailAddress  VARCHAR,
  creditCard  VARCHAR,
  city  VARCHAR,
  state  VARCHAR,
  dateTime  TIMESTAMP(3),
  extra  VARCHAR,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '0' SECOND
) WITH (
  'connector' = 'nexmark',
  'kind' = 'person'
);

CREATE TABLE auction (
  id  BIGINT,
  itemName  VARCHAR,
  description  VARCHAR,
  initialBid  BIGINT,
  reserve  BIGINT,
  dateTime  TIMESTAMP(3),
  expires  TIMESTAMP(3),
  seller  BIGINT,
  category  BIGINT,
  extra  VARCHAR,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '0' SECOND
) WITH (
  'connector' = 'nexmark',
  'kind' = 'auction'
);

CREATE TABLE nexmark_q8 (
  id  BIGINT,
  name  VARCHAR,
  stime  TIMESTAMP(3)
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q8
SELECT P.id, P.name, P.starttime
FROM (
  SELECT id, name,
        window_start AS starttime,
        window_end AS endtime
  FROM TABLE(
            TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY id, name, window_start, window_end
) P
JOIN (
  SELECT seller,
        window_start AS starttime,
        window_end AS endtime
  FROM TABLE(
        TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY seller, window_start, window_end
) A
ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
