-- group-window form: GROUP BY SESSION(ts, gap), key with SESSION_START and SESSION_END

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
    bidder,
    SESSION_START(dateTime, INTERVAL '5' SECOND) AS session_start,
    SESSION_END(dateTime, INTERVAL '5' SECOND) AS session_end,
    COUNT(*) AS bids,
    SUM(price) AS spent
FROM bid
GROUP BY SESSION(dateTime, INTERVAL '5' SECOND), bidder;
