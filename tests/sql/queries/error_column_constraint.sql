-- error: column 'camera': this constraint is not supported
-- at: camera STRING PRIMARY KEY

CREATE TABLE detections (
    ts TIMESTAMP(3),
    camera STRING PRIMARY KEY,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'path' = '../data/detections.csv', 'format' = 'csv');

SELECT camera FROM detections;
