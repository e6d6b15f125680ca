SELECT d.ts, d.camera, d.district, d.label, w.station, w.pm10, w.visibility, w.ts AS reading_time
FROM detections AS d
ASOF JOIN weather AS w ON d.district = w.district AND d.ts >= w.ts
WHERE d.label IN ('fire', 'smoke', 'collision')
