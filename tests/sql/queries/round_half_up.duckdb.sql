-- Flink rounds a DOUBLE as BigDecimal.valueOf(x) (its shortest decimal text) with HALF_UP:
-- the same as DuckDB's DECIMAL rounding of the double's text. (DuckDB's round(DOUBLE)
-- rounds the binary value: round(0.15, 1) = 0.1.)
SELECT
    ts,
    station,
    wind_speed,
    CAST(round(CAST(CAST(wind_speed AS VARCHAR) AS DECIMAL(38, 18))) AS DOUBLE) AS wind_whole,
    CAST(round(CAST(CAST(wind_speed AS VARCHAR) AS DECIMAL(38, 18)), 1) AS DOUBLE) AS wind_one_digit,
    CAST(round(CAST(CAST(-wind_speed AS VARCHAR) AS DECIMAL(38, 18)), 1) AS DOUBLE) AS negative_one_digit,
    CAST(round(CAST(CAST(precipitation AS VARCHAR) AS DECIMAL(38, 18)), 1) AS DOUBLE) AS rain_one_digit
FROM weather
