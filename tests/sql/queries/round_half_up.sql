-- ROUND of DOUBLE values as Flink does it: half up on the decimal value (ROUND(2.5) = 3, ROUND(10.05, 1) = 10.1, ROUND(0.15, 1) = 0.2)

CREATE TABLE weather (
    ts TIMESTAMP(3),
    station STRING,
    district STRING,
    pm10 DOUBLE,
    wind_speed DOUBLE,
    precipitation DOUBLE,
    visibility INT,
    humidity INT,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'path' = '../data/weather.csv', 'format' = 'csv', 'batch.size' = '8');

SELECT
    ts,
    station,
    wind_speed,
    ROUND(wind_speed) AS wind_whole,
    ROUND(wind_speed, 1) AS wind_one_digit,
    ROUND(-wind_speed, 1) AS negative_one_digit,
    ROUND(precipitation, 1) AS rain_one_digit
FROM weather;
