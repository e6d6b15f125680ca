-- Nexmark q3 (local item suggestion): a regular (unbounded) equi-join of auctions and persons with filters on both sides

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

SELECT P.name, P.city, P.state, A.id, A.category
FROM auction AS A
INNER JOIN person AS P ON A.seller = P.id
WHERE A.category IN (10, 11) AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
