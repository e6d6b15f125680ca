-- string functions: UPPER, LOWER, CHAR_LENGTH, SUBSTRING (both forms), CONCAT (NULL if an argument is), ||, TRIM

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

SELECT
    ts,
    UPPER(district) AS district_upper,
    LOWER(UPPER(label)) AS label_lower,
    CHAR_LENGTH(camera) AS camera_length,
    SUBSTRING(camera, 5, 2) AS camera_district,
    SUBSTRING(camera FROM 8) AS camera_number,
    CONCAT(district, '/', camera) AS camera_path,
    CONCAT(district, ':', zone_kind) AS zone_path,
    label || '#' || CAST(track_id AS STRING) AS track_key,
    TRIM(zone_kind) AS zone,
    CHAR_LENGTH(zone_kind) - CHAR_LENGTH(TRIM(zone_kind)) AS padding
FROM detections
WHERE label IN ('fire', 'smoke', 'collision') OR zone_kind <> TRIM(zone_kind);
