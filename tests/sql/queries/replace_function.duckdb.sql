SELECT
    ts,
    camera,
    replace(camera, 'cam-', 'camera/') AS camera_url,
    replace(label, 'o', '0') AS leet_label
FROM detections
WHERE label IN ('smoke', 'collision')
