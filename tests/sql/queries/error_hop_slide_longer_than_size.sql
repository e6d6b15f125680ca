-- error: HOP slide (30000 ms) is longer than its size (10000 ms)
-- at: HOP(TABLE weather

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

SELECT window_start, window_end, AVG(pm10) AS pm10
FROM TABLE(HOP(TABLE weather, DESCRIPTOR(ts), INTERVAL '30' SECOND, INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
