-- error: a quoted string or name is not closed
-- at: 'cam-so-01

SELECT camera FROM detections WHERE camera = 'cam-so-01;
