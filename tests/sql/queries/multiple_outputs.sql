-- one job, three outputs: an INSERT into a collect sink and two bare SELECTs (collected as result and result_2) over one source

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

CREATE TABLE big_bids (auction BIGINT, price BIGINT, dateTime TIMESTAMP(3)) WITH ('connector' = 'collect');

INSERT INTO big_bids SELECT auction, price, dateTime FROM bid WHERE price > 9000;

SELECT channel, COUNT(*) AS bids FROM bid GROUP BY channel;

SELECT window_start, window_end, COUNT(*) AS bids, MAX(price) AS top_price
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '30' SECOND))
GROUP BY window_start, window_end;
