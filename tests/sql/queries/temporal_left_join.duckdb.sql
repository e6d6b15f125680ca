SELECT d.ts, d.district, d.label, w.station, w.pm10 > 100 AS polluted, d.ts - INTERVAL 1 SECOND AS shifted
FROM detections AS d
ASOF LEFT JOIN weather AS w ON d.district = w.district AND d.ts >= w.ts
