-- group-window form: GROUP BY HOP(ts, slide, size), key with HOP_START and HOP_END

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

SELECT
    HOP_START(dateTime, INTERVAL '5' SECOND, INTERVAL '15' SECOND) AS window_start,
    HOP_END(dateTime, INTERVAL '5' SECOND, INTERVAL '15' SECOND) AS window_end,
    channel,
    COUNT(*) AS bids,
    SUM(price) AS volume,
    MAX(price) AS top_price
FROM bid
GROUP BY HOP(dateTime, INTERVAL '5' SECOND, INTERVAL '15' SECOND), channel;
