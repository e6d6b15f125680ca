WITH scored AS (
    SELECT ts, district, camera, label, coalesce(confidence, 0.5) AS conf
    FROM detections
    WHERE label <> 'person'
),
hazards AS (
    SELECT ts, district, camera, label, conf * 2 AS weight
    FROM scored
    WHERE label IN ('fire', 'smoke', 'collision')
)
SELECT
    time_bucket(INTERVAL 30 SECOND, ts) AS window_start,
    time_bucket(INTERVAL 30 SECOND, ts) + INTERVAL 30 SECOND AS window_end,
    district,
    count(*) AS hazards,
    sum(weight) AS total_weight,
    max(camera) AS last_camera
FROM hazards
GROUP BY ALL
