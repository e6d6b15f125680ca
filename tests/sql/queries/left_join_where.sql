-- a WHERE clause after a LEFT (temporal) join filters the joined rows

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

SELECT d.ts, d.district, d.label, w.station
FROM detections AS d
LEFT JOIN weather FOR SYSTEM_TIME AS OF d.ts AS w ON d.district = w.district
WHERE d.label <> 'person' AND d.ts < CAST('2026-05-01 09:00:40' AS TIMESTAMP(3));
