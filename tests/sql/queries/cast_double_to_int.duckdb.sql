-- DuckDB's CAST rounds to the nearest; Flink's truncates: trunc() first.
SELECT
    ts,
    confidence,
    CAST(trunc(confidence * 100) AS INT) AS percent,
    CAST(trunc(-confidence * 10) AS BIGINT) AS negative_tenths
FROM detections
WHERE label = 'fire' AND confidence IS NOT NULL
