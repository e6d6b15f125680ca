-- The city's crowd rule in SQL (the Python rule: actors/district.py, DistrictFusion._crowds).
-- At least 15 distinct persons (tracks) in view of one camera within a 30 s tumbling window;
-- severity 2, 3 at twice that, +1 during yellow dust (PM10 >= 151 at the last detection).
-- The thresholds are the [rules] crowd_* and dust_levels values of incheon.toml.
-- Not here: the Python rule raises an episode again only after repeat_after_s.
--   citystream sql actors/config/rules/crowd.sql --duration 600
CREATE TABLE detections (
    ts TIMESTAMP(3), camera STRING, district STRING, track_id BIGINT, label STRING, confidence DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '0.5' SECOND
) WITH ('connector' = 'city', 'stream' = 'detections');

CREATE TABLE weather (
    ts TIMESTAMP(3), station STRING, district STRING, pm10 DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '0.5' SECOND
) WITH ('connector' = 'city', 'stream' = 'weather');

CREATE VIEW persons AS
SELECT d.ts, d.camera, d.district, d.track_id, w.pm10
FROM detections AS d
JOIN weather FOR SYSTEM_TIME AS OF d.ts AS w ON d.district = w.district
WHERE d.label = 'person';

SELECT
    district,
    camera,
    window_start,
    window_end,
    COUNT(DISTINCT track_id) AS persons,
    2 + CASE WHEN COUNT(DISTINCT track_id) >= 30 THEN 1 ELSE 0 END
      + CASE WHEN LAST_VALUE(pm10) >= 151.0 THEN 1 ELSE 0 END AS severity
FROM TABLE(TUMBLE(TABLE persons, DESCRIPTOR(ts), INTERVAL '30' SECOND))
GROUP BY window_start, window_end, district, camera
HAVING COUNT(DISTINCT track_id) >= 15;
