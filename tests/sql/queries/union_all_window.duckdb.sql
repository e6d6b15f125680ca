WITH events AS (
    SELECT ts, district, 'detection' AS source FROM detections WHERE label <> 'person'
    UNION ALL
    SELECT ts, district, 'weather' AS source FROM weather WHERE pm10 > 100
)
SELECT
    time_bucket(INTERVAL 20 SECOND, ts) AS window_start,
    time_bucket(INTERVAL 20 SECOND, ts) + INTERVAL 20 SECOND AS window_end,
    district,
    source,
    count(*) AS events
FROM events
GROUP BY ALL
