-- The city's fire rule in SQL (the Python rule: actors/district.py, DistrictFusion._fires).
-- At least 3 fire or smoke detections of confidence >= 0.5 by one camera in a 10 s tumbling
-- window; severity 3 for smoke only, 4 once fire is seen, +1 in strong wind (>= 8 m/s), +1 when
-- dry (humidity <= 35 %), at most 5; the weather is the district's latest reading at the last
-- detection. The thresholds are the [rules] fire_* values of incheon.toml.
-- Not here: the Python rule also warns the downwind neighbour and raises an episode again only
-- after repeat_after_s; this query gives every window that triggers.
--   citystream sql actors/config/rules/fire.sql --duration 600
CREATE TABLE detections (
    ts TIMESTAMP(3), camera STRING, district STRING, track_id BIGINT, label STRING, confidence DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '0.5' SECOND
) WITH ('connector' = 'city', 'stream' = 'detections');

CREATE TABLE weather (
    ts TIMESTAMP(3), station STRING, district STRING, wind_speed DOUBLE, wind_direction DOUBLE, humidity DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '0.5' SECOND
) WITH ('connector' = 'city', 'stream' = 'weather');

-- Each detection with the latest reading of its district (a temporal join).
CREATE VIEW fused AS
SELECT d.ts, d.camera, d.district, d.label, d.confidence, w.wind_speed, w.humidity
FROM detections AS d
JOIN weather FOR SYSTEM_TIME AS OF d.ts AS w ON d.district = w.district;

SELECT
    district,
    camera,
    window_start,
    window_end,
    COUNT(*) AS detections,
    MAX(confidence) AS confidence,
    LEAST(
        CASE WHEN MAX(label) = 'smoke' AND COUNT(DISTINCT label) = 1 THEN 3 ELSE 4 END
        + CASE WHEN LAST_VALUE(wind_speed) >= 8.0 THEN 1 ELSE 0 END
        + CASE WHEN LAST_VALUE(humidity) <= 35.0 THEN 1 ELSE 0 END,
        5
    ) AS severity
FROM TABLE(TUMBLE(TABLE fused, DESCRIPTOR(ts), INTERVAL '10' SECOND))
WHERE label IN ('fire', 'smoke') AND confidence >= 0.5
GROUP BY window_start, window_end, district, camera
HAVING COUNT(*) >= 3;
