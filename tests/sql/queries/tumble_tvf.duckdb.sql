SELECT
    time_bucket(INTERVAL 10 SECOND, ts) AS window_start,
    time_bucket(INTERVAL 10 SECOND, ts) + INTERVAL 10 SECOND AS window_end,
    district,
    count(*) AS detections,
    count(zone_kind) AS zoned,
    count(DISTINCT label) AS labels,
    sum(track_id) AS track_sum,
    min(confidence) AS min_confidence,
    max(confidence) AS max_confidence,
    avg(confidence) AS avg_confidence
FROM detections
GROUP BY ALL
