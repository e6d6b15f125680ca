-- -------------------------------------------------------------------------------------------------
-- Query 3: Local Item Suggestion
-- -------------------------------------------------------------------------------------------------
-- Who is selling in OR, ID or CA in category 10, and for what auction ids?
-- Illustrates an incremental join (using per-key state) and filter: a regular join, whose state
-- (every auction and person) grows without bound.
--
-- Flink text: nexmark/nexmark, nexmark-flink/src/main/resources/queries/q3.sql.
-- Departures from it:
-- * The person and auction tables are declared here with the 'nexmark' connector (one generator
--   source per kind), where Flink declares one 'datagen' table of nested person/auction/bid rows
--   and selects each kind in a view (ddl_gen.sql, ddl_views.sql). The columns are the same.
-- * The watermarks allow 0 s of out-of-orderness instead of Flink's 4 s: our generator emits each
--   partition in order by default (NexmarkConfig.max_out_of_orderness_ms is 0 for the default
--   out_of_order_group_size of 1), so no row is late; Flink's 4 s covers its parallel sources.
--   (A regular join does not read the watermark.)
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

CREATE TABLE nexmark_q3 (
  name  VARCHAR,
  city  VARCHAR,
  state  VARCHAR,
  id  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q3
SELECT
    P.name, P.city, P.state, A.id
FROM
    auction AS A INNER JOIN person AS P on A.seller = P.id
WHERE
    A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
