SELECT
    ts,
    station,
    abs(pm10 - 100) AS pm10_excess,
    round(pm10 / 3, 2) AS pm10_third,
    floor(wind_speed) AS wind_floor,
    ceil(wind_speed) AS wind_ceil,
    humidity % 7 AS humidity_mod,
    visibility % 1000 AS visibility_rest,
    pow(wind_speed, 2) AS wind_squared,
    sqrt(pm10) AS pm10_root,
    sqrt(pow(wind_speed, 2) + pow(precipitation, 2)) AS magnitude
FROM weather
