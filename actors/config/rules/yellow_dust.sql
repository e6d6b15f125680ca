-- The city's yellow-dust rule in SQL (the Python rule: actors/district.py, _dust_incidents).
-- The mean PM10 of a district's readings over 10 minutes, at or above the first of the
-- [rules] dust_levels of incheon.toml (81, 151, 301, 600 ug/m3): severity 2, 3, 4 or 5.
--   citystream sql actors/config/rules/yellow_dust.sql --duration 3600
CREATE TABLE weather (
    ts TIMESTAMP(3), station STRING, district STRING, pm10 DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '0.5' SECOND
) WITH ('connector' = 'city', 'stream' = 'weather');

SELECT
    district,
    window_start,
    window_end,
    AVG(pm10) AS pm10_mean,
    MAX(pm10) AS pm10_max,
    COUNT(*) AS readings,
    CASE
        WHEN AVG(pm10) >= 600 THEN 5
        WHEN AVG(pm10) >= 301 THEN 4
        WHEN AVG(pm10) >= 151 THEN 3
        ELSE 2
    END AS severity
FROM TABLE(TUMBLE(TABLE weather, DESCRIPTOR(ts), INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, district
HAVING AVG(pm10) >= 81;
