-- window join of two windowed aggregates (detections and weather per district and 20 s window) ON window_start, window_end and the key

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

CREATE VIEW detection_counts AS
SELECT window_start, window_end, district, COUNT(*) AS detections, COUNT(DISTINCT camera) AS cameras
FROM TABLE(TUMBLE(TABLE detections, DESCRIPTOR(ts), INTERVAL '20' SECOND))
GROUP BY window_start, window_end, district;

CREATE VIEW air AS
SELECT window_start, window_end, district, AVG(pm10) AS pm10, MAX(wind_speed) AS gust
FROM TABLE(TUMBLE(TABLE weather, DESCRIPTOR(ts), INTERVAL '20' SECOND))
GROUP BY window_start, window_end, district;

SELECT L.window_start, L.window_end, L.district, L.detections, L.cameras, R.pm10, R.gust
FROM detection_counts AS L
JOIN air AS R ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.district = R.district;
