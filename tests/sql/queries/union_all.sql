-- UNION ALL of three SELECTs over two streams (different tables, literals as columns, a DOUBLE and an INT column unified)

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

SELECT ts, district, 'detection' AS source, label AS kind, confidence AS reading
FROM detections
WHERE label IN ('fire', 'smoke')
UNION ALL
SELECT ts, district, 'weather', 'pm10', pm10
FROM weather
WHERE pm10 > 150
UNION ALL
SELECT ts, district, 'weather', 'humidity', humidity
FROM weather
WHERE humidity > 90;
