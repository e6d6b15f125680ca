-- interval join with its time bounds in WHERE (two comparisons, strict and not) and a residual filter: weather readings of the district in the 5 s before a fire or smoke detection

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

SELECT d.ts, d.camera, d.label, w.station, w.pm10, w.ts AS reading_time
FROM detections AS d
JOIN weather AS w ON d.district = w.district
WHERE w.ts > d.ts - INTERVAL '5' SECOND AND w.ts <= d.ts AND d.label IN ('fire', 'smoke') AND w.pm10 > 40;
