"""The city's Arrow schemas: what cameras detect, what weather stations read, and the incidents
the district actors raise for the police gateways."""

from __future__ import annotations

import pyarrow as pa

TIME = pa.timestamp("ms", "UTC")

LABELS = ("person", "vehicle", "bicycle", "fire", "smoke", "collision")
ZONE_KINDS = ("restricted", "road", "plaza", "general")
INCIDENT_KINDS = ("intrusion", "loitering", "crowd", "fire", "road", "yellow_dust")

DETECTION = pa.schema(
    [
        pa.field("ts", TIME),  # event time: when the camera saw it
        pa.field("camera", pa.string()),
        pa.field("district", pa.string()),
        pa.field("track_id", pa.int64()),  # stable while the object stays in view
        pa.field("label", pa.string()),  # one of LABELS
        pa.field("confidence", pa.float64()),  # score in [0, 1]
        pa.field("frame_x", pa.float64()),  # position in the frame, 0..1 from the left
        pa.field("frame_y", pa.float64()),  # 0..1 from the top
        pa.field("lat", pa.float64()),  # position on the map
        pa.field("lon", pa.float64()),
        pa.field("zone", pa.string()),  # the camera zone the position falls in, or null
        pa.field("zone_kind", pa.string()),  # restricted / road / plaza / general, or null
        pa.field("ingest_time", TIME),  # when the camera actor emitted it (for latency)
    ]
)

WEATHER = pa.schema(
    [
        pa.field("ts", TIME),
        pa.field("station", pa.string()),
        pa.field("district", pa.string()),
        pa.field("temperature", pa.float64()),  # degrees Celsius
        pa.field("humidity", pa.float64()),  # percent
        pa.field("wind_speed", pa.float64()),  # m/s
        pa.field("wind_direction", pa.float64()),  # degrees the wind blows FROM, 0 = north
        pa.field("solar_radiation", pa.float64()),  # W/m2
        pa.field("pm10", pa.float64()),  # ug/m3 (yellow dust)
        pa.field("pressure", pa.float64()),  # hPa
        pa.field("precipitation", pa.float64()),  # mm/h
        pa.field("visibility", pa.float64()),  # metres
    ]
)

# The weather of a district carried by every fused detection and every incident.
WEATHER_CONTEXT = ("temperature", "humidity", "wind_speed", "wind_direction", "pm10", "precipitation", "visibility")

INCIDENT = pa.schema(
    [
        pa.field("incident_id", pa.string()),  # deterministic: kind, district, key, window
        pa.field("district", pa.string()),
        pa.field("kind", pa.string()),  # one of INCIDENT_KINDS
        pa.field("severity", pa.int64()),  # 1 (note) .. 5 (critical)
        pa.field("window_start", TIME),
        pa.field("window_end", TIME),
        pa.field("cameras", pa.list_(pa.string())),
        pa.field("evidence", pa.string()),  # what the rule saw, in words and figures
        *[pa.field(f"weather_{name}", pa.float64()) for name in WEATHER_CONTEXT],
        pa.field("trigger_time", TIME),  # event time of the detection (or reading) that raised it
        pa.field("ingest_time", TIME),  # when that detection entered the graph
        pa.field("emit_time", TIME),  # when the district actor raised the incident
        pa.field("gateway", pa.string()),  # the police gateway it is routed to
    ]
)
