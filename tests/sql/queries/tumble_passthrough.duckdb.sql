-- window_time is the window's last millisecond (window_end - 1 ms).
SELECT
    *,
    time_bucket(INTERVAL 30 SECOND, ts) AS window_start,
    time_bucket(INTERVAL 30 SECOND, ts) + INTERVAL 30 SECOND AS window_end,
    time_bucket(INTERVAL 30 SECOND, ts) + INTERVAL 30 SECOND - INTERVAL 1 MILLISECOND AS window_time
FROM weather
WHERE district = 'songdo'
