-- math functions: ABS, ROUND with digits, FLOOR, CEIL, MOD and %, POWER, SQRT, over DOUBLE and INT columns with NULLs

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
    ABS(pm10 - 100) AS pm10_excess,
    ROUND(pm10 / 3, 2) AS pm10_third,
    FLOOR(wind_speed) AS wind_floor,
    CEIL(wind_speed) AS wind_ceil,
    MOD(humidity, 7) AS humidity_mod,
    visibility % 1000 AS visibility_rest,
    POWER(wind_speed, 2) AS wind_squared,
    SQRT(pm10) AS pm10_root,
    SQRT(POWER(wind_speed, 2) + POWER(precipitation, 2)) AS magnitude
FROM weather;
