WITH ordered AS (
    SELECT district, ts,
        CASE WHEN lag(ts) OVER (PARTITION BY district ORDER BY ts) IS NULL
               OR ts - lag(ts) OVER (PARTITION BY district ORDER BY ts) >= INTERVAL '3' SECOND THEN 1 ELSE 0 END AS starts
    FROM detections
), numbered AS (
    SELECT district, ts, sum(starts) OVER (PARTITION BY district ORDER BY ts ROWS UNBOUNDED PRECEDING) AS session
    FROM ordered
)
SELECT min(ts) AS window_start, max(ts) + INTERVAL '3' SECOND AS window_end, count(*) AS detections
FROM numbered GROUP BY district, session
