-- NULLs: COALESCE, NULLIF, IS NULL, IS NOT NULL in SELECT and WHERE, and NULL through arithmetic and comparisons

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
    COALESCE(zone_kind, 'unknown') AS zone,
    COALESCE(confidence, 0.0) AS confidence_or_zero,
    NULLIF(label, 'person') AS non_person,
    NULLIF(track_id, 105) AS track_unless_105,
    confidence IS NULL AS missing_confidence,
    zone_kind IS NOT NULL AS has_zone,
    confidence * 2 AS doubled,
    confidence > 0.5 AS confident
FROM detections
WHERE confidence IS NULL OR zone_kind IS NULL OR label = 'collision';
