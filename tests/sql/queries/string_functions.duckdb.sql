-- Flink's CONCAT is NULL when an argument is: DuckDB's || behaves so, its concat() does not.
SELECT
    ts,
    upper(district) AS district_upper,
    lower(upper(label)) AS label_lower,
    length(camera) AS camera_length,
    substring(camera, 5, 2) AS camera_district,
    substring(camera, 8) AS camera_number,
    district || '/' || camera AS camera_path,
    district || ':' || zone_kind AS zone_path,
    label || '#' || CAST(track_id AS VARCHAR) AS track_key,
    trim(zone_kind) AS zone,
    length(zone_kind) - length(trim(zone_kind)) AS padding
FROM detections
WHERE label IN ('fire', 'smoke', 'collision') OR zone_kind <> trim(zone_kind)
