-- a TUMBLE window table function without aggregation (SELECT * gives the table's columns and window_start, window_end, window_time), filtered

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

SELECT *
FROM TABLE(TUMBLE(TABLE weather, DESCRIPTOR(ts), INTERVAL '30' SECOND))
WHERE district = 'songdo';
