SELECT d.ts, d.camera, d.label, w.station, w.pm10, w.ts AS reading_time
FROM detections AS d
JOIN weather AS w ON d.district = w.district
WHERE w.ts > d.ts - INTERVAL 5 SECOND AND w.ts <= d.ts AND d.label IN ('fire', 'smoke') AND w.pm10 > 40
