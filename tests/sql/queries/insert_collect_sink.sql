-- INSERT INTO a collect sink with declared column names and types (values cast to them: BIGINT to INT and STRING, the sink's names)

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

CREATE TABLE alerts (
    alert_time TIMESTAMP(3),
    district STRING,
    camera STRING,
    severity INT,
    confidence DOUBLE,
    track STRING
) WITH ('connector' = 'collect');

INSERT INTO alerts
SELECT
    ts,
    district,
    camera,
    CASE label WHEN 'fire' THEN 3 WHEN 'collision' THEN 2 ELSE 1 END,
    confidence,
    track_id
FROM detections
WHERE label IN ('fire', 'collision', 'smoke') AND confidence > 0.6;
