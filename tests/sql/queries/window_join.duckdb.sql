WITH detection_counts AS (
    SELECT time_bucket(INTERVAL 20 SECOND, ts) AS window_start, district, count(*) AS detections, count(DISTINCT camera) AS cameras
    FROM detections
    GROUP BY ALL
),
air AS (
    SELECT time_bucket(INTERVAL 20 SECOND, ts) AS window_start, district, avg(pm10) AS pm10, max(wind_speed) AS gust
    FROM weather
    GROUP BY ALL
)
SELECT L.window_start, L.window_start + INTERVAL 20 SECOND AS window_end, L.district, L.detections, L.cameras, R.pm10, R.gust
FROM detection_counts AS L
JOIN air AS R ON L.window_start = R.window_start AND L.district = R.district
