SELECT d.ts, d.district, d.label, w.station
FROM detections AS d
ASOF LEFT JOIN weather AS w ON d.district = w.district AND d.ts >= w.ts
WHERE d.label <> 'person' AND d.ts < TIMESTAMP '2026-05-01 09:00:40'
