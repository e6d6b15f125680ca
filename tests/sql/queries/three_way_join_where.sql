-- WHERE over a SELECT with two joins (a chain of interval and regular joins): every condition applies

CREATE TABLE detections (
    ts TIMESTAMP(3),
    camera STRING,
    district STRING,
    track_id BIGINT,
    label STRING,
    confidence DOUBLE,
    zone_kind STRING,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'path' = '../data/detections.csv', 'format' = 'csv', 'batch.size' = '16');

CREATE TABLE weather (
    ts TIMESTAMP(3),
    station STRING,
    district STRING,
    pm10 DOUBLE,
    wind_speed DOUBLE,
    precipitation DOUBLE,
    visibility DOUBLE,
    humidity DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'path' = '../data/weather.csv', 'format' = 'csv', 'batch.size' = '16');

SELECT d.camera, d.track_id, w.station, w.pm10, f.camera AS fire_camera
FROM detections AS d
JOIN weather AS w ON d.district = w.district AND d.ts BETWEEN w.ts AND w.ts + INTERVAL '5' SECOND
JOIN detections AS f ON d.district = f.district
WHERE d.label = 'person' AND f.label = 'fire' AND w.pm10 > 60;
