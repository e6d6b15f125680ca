SELECT
    district,
    label,
    count(*) AS detections,
    count(confidence) AS scored,
    count(DISTINCT camera) AS cameras,
    sum(track_id) AS track_sum,
    min(confidence) AS min_confidence,
    max(confidence) AS max_confidence,
    avg(confidence) AS avg_confidence
FROM detections
GROUP BY district, label
HAVING count(*) >= 5
