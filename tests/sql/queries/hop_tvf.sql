-- HOP window table function (slide 10 s, size 30 s: each row in three windows) with GROUP BY window_start, window_end, key and HAVING; SUM over a column with NULLs

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
    window_start,
    window_end,
    district,
    COUNT(*) AS readings,
    AVG(pm10) AS avg_pm10,
    MAX(pm10) AS max_pm10,
    SUM(precipitation) AS rain,
    MIN(visibility) AS min_visibility
FROM TABLE(HOP(TABLE weather, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '30' SECOND))
GROUP BY window_start, window_end, district
HAVING AVG(pm10) > 70;
