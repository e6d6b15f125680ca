-- error: unknown connector 'kafka'
-- error: connectors: memory, file
-- at: 'connector' = 'kafka'

CREATE TABLE readings (ts TIMESTAMP(3), pm10 DOUBLE, WATERMARK FOR ts AS ts) WITH ('connector' = 'kafka', 'topic' = 'weather');

SELECT ts, pm10 FROM readings;
