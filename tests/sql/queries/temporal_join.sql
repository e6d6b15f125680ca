-- temporal (as-of) join: each detection with the latest weather reading of its district at or before it (FOR SYSTEM_TIME AS OF); inner, so detections before any reading are dropped

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
    visibility INT,
    humidity INT,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'path' = '../data/weather.csv', 'format' = 'csv', 'batch.size' = '8');

SELECT d.ts, d.camera, d.district, d.label, w.station, w.pm10, w.visibility, w.ts AS reading_time
FROM detections AS d
JOIN weather FOR SYSTEM_TIME AS OF d.ts AS w ON d.district = w.district
WHERE d.label IN ('fire', 'smoke', 'collision');
