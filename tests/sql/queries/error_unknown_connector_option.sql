-- error: connector 'file' has no option 'pth'
-- error: 'path': file path
-- at: 'pth'

CREATE TABLE weather (
    ts TIMESTAMP(3),
    district STRING,
    pm10 DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'pth' = '../data/weather.csv');

SELECT ts, pm10 FROM weather;
