SELECT ts, district, 'detection' AS source, label AS kind, confidence AS reading
FROM detections
WHERE label IN ('fire', 'smoke')
UNION ALL
SELECT ts, district, 'weather', 'pm10', pm10
FROM weather
WHERE pm10 > 150
UNION ALL
SELECT ts, district, 'weather', 'humidity', CAST(humidity AS DOUBLE)
FROM weather
WHERE humidity > 90
