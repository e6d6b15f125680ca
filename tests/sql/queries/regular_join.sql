-- regular (unbounded) equi-join of two streams on a key: auctions with their seller, a residual condition in ON, filters and computed columns

CREATE TABLE auction (
    id BIGINT,
    itemName STRING,
    description STRING,
    initialBid BIGINT,
    reserve BIGINT,
    dateTime TIMESTAMP(3),
    expires TIMESTAMP(3),
    seller BIGINT,
    category BIGINT,
    extra STRING,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '1' SECOND
) WITH ('connector' = 'file', 'path' = '../data/auctions.csv', 'format' = 'csv', 'batch.size' = '10');

CREATE TABLE person (
    id BIGINT,
    name STRING,
    emailAddress STRING,
    creditCard STRING,
    city STRING,
    state STRING,
    dateTime TIMESTAMP(3),
    extra STRING,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '1' SECOND
) WITH ('connector' = 'file', 'path' = '../data/persons.csv', 'format' = 'csv', 'batch.size' = '10');

SELECT A.id, A.itemName, P.city, P.state, A.reserve - A.initialBid AS margin, UPPER(P.state) || '-' || CAST(A.category AS STRING) AS region
FROM auction AS A
JOIN person AS P ON A.seller = P.id AND A.reserve > A.initialBid + 100
WHERE P.state IN ('OR', 'CA', 'WA');
