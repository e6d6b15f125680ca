-- Gaps and islands: a session starts where the previous row of the camera is 8 s or more
-- before; it spans [first row, last row + gap).
WITH ordered AS (
    SELECT *, epoch_ms(ts) AS t, lag(epoch_ms(ts)) OVER (PARTITION BY camera ORDER BY ts) AS previous
    FROM detections
),
numbered AS (
    SELECT *, sum(CASE WHEN previous IS NULL OR t - previous >= 8000 THEN 1 ELSE 0 END)
        OVER (PARTITION BY camera ORDER BY t ROWS UNBOUNDED PRECEDING) AS session
    FROM ordered
)
SELECT
    epoch_ms(min(t)) AS window_start,
    epoch_ms(max(t) + 8000) AS window_end,
    camera,
    count(*) AS detections,
    count(DISTINCT label) AS labels,
    max(confidence) AS peak_confidence,
    min(track_id) AS first_track
FROM numbered
GROUP BY camera, session
