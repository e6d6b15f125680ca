SELECT d.camera, d.track_id, w.station, w.pm10, f.camera AS fire_camera
FROM detections AS d
JOIN weather AS w ON d.district = w.district AND d.ts BETWEEN w.ts AND w.ts + INTERVAL '5' SECOND
JOIN detections AS f ON d.district = f.district
WHERE d.label = 'person' AND f.label = 'fire' AND w.pm10 > 60
