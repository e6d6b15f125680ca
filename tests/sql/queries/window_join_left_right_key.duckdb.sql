WITH fires AS (
    SELECT time_bucket(INTERVAL 10 SECOND, ts) AS window_start, district, count(*) AS fires
    FROM detections
    WHERE label IN ('fire', 'smoke')
    GROUP BY ALL
),
dry AS (
    SELECT time_bucket(INTERVAL 10 SECOND, ts) AS window_start, district, min(humidity) AS humidity
    FROM weather
    WHERE humidity < 60
    GROUP BY ALL
)
SELECT f.window_start, f.window_start + INTERVAL 10 SECOND AS window_end, f.district, f.fires, d.district AS dry_district, d.humidity
FROM fires AS f
LEFT JOIN dry AS d ON f.window_start = d.window_start AND f.district = d.district
