-- IN and NOT IN with NULL values and NULL in the list (three-valued, as SQL), SUBSTRING from the end, EXTRACT(DOW)

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
    camera,
    zone_kind IN ('school', 'road') AS at_school_or_road,
    zone_kind IN ('school', NULL) AS school_or_unknown,
    SUBSTRING(camera, -2) AS camera_number,
    SUBSTRING(camera, -5, 2) AS camera_district,
    EXTRACT(DOW FROM ts) AS day_of_week
FROM detections
WHERE zone_kind NOT IN ('crosswalk', 'park');
