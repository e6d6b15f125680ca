-- LEFT window join: every window of the left side, the right side's columns NULL where it has no row for that window and key

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

CREATE VIEW fires AS
SELECT window_start, window_end, district, COUNT(*) AS fires
FROM TABLE(TUMBLE(TABLE detections, DESCRIPTOR(ts), INTERVAL '10' SECOND))
WHERE label IN ('fire', 'smoke')
GROUP BY window_start, window_end, district;

CREATE VIEW dry AS
SELECT window_start, window_end, district, MIN(humidity) AS humidity
FROM TABLE(TUMBLE(TABLE weather, DESCRIPTOR(ts), INTERVAL '10' SECOND))
WHERE humidity < 60
GROUP BY window_start, window_end, district;

SELECT f.window_start, f.window_end, f.district, f.fires, d.humidity
FROM fires AS f
LEFT JOIN dry AS d ON f.window_start = d.window_start AND f.window_end = d.window_end AND f.district = d.district;
