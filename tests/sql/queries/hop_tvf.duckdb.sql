-- A row at t is in the windows starting at k * slide for floor((t - size) / slide) < k <= floor(t / slide).
WITH windowed AS (
    SELECT *, epoch_ms(ts) AS t
    FROM weather
),
assigned AS (
    SELECT *, unnest(generate_series(CAST(floor((t - 30000) / 10000) AS BIGINT) + 1, CAST(floor(t / 10000) AS BIGINT))) * 10000 AS ws
    FROM windowed
)
SELECT
    epoch_ms(ws) AS window_start,
    epoch_ms(ws + 30000) AS window_end,
    district,
    count(*) AS readings,
    avg(pm10) AS avg_pm10,
    max(pm10) AS max_pm10,
    sum(precipitation) AS rain,
    min(visibility) AS min_visibility
FROM assigned
GROUP BY ws, district
HAVING avg(pm10) > 70
