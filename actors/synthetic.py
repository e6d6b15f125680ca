"""Seeded, vectorised generators of detection-like and weather-like tables.

They feed the demo job, the tests and the benchmarks with realistic shapes (strings for
cameras and districts, dictionary-free, a few hundred distinct keys) without a city model;
the camera and station actors of the city issue build on them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

DISTRICTS = ("songdo", "yeongjong", "cheongna")
LABELS = ("person", "vehicle", "bicycle", "fire", "smoke")
_LABEL_WEIGHTS = (0.55, 0.35, 0.08, 0.01, 0.01)

DETECTION_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ms", "UTC")),
        pa.field("camera", pa.string()),
        pa.field("district", pa.string()),
        pa.field("track_id", pa.int64()),
        pa.field("label", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("x", pa.float64()),
        pa.field("y", pa.float64()),
    ]
)

WEATHER_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ms", "UTC")),
        pa.field("station", pa.string()),
        pa.field("district", pa.string()),
        pa.field("temperature", pa.float64()),
        pa.field("wind_speed", pa.float64()),
        pa.field("pm10", pa.float64()),
        pa.field("precipitation", pa.float64()),
    ]
)


def detections(
    rows: int,
    start_ms: int = 1_767_225_600_000,
    rate_per_s: float = 10_000.0,
    cameras: int = 120,
    seed: int = 0,
    disorder_ms: int = 0,
) -> pa.Table:
    """``rows`` detections at ``rate_per_s`` from ``start_ms``, each camera in one district;
    ``disorder_ms`` > 0 delays rows randomly by up to that much (out-of-order arrival)."""
    rng = np.random.default_rng(seed)
    step = 1000.0 / rate_per_s
    ts = start_ms + (np.arange(rows) * step).astype(np.int64)
    if disorder_ms:
        ts = ts - rng.integers(0, disorder_ms + 1, rows)
    camera_index = rng.integers(0, cameras, rows)
    camera_names = np.array([f"cam-{i:04d}" for i in range(cameras)], dtype=object)
    district_of_camera = np.array([DISTRICTS[i % len(DISTRICTS)] for i in range(cameras)], dtype=object)
    labels = np.array(LABELS, dtype=object)[rng.choice(len(LABELS), rows, p=_LABEL_WEIGHTS)]
    return pa.table(
        [
            pa.array(ts, pa.int64()).cast(pa.timestamp("ms", "UTC")),
            pa.array(camera_names[camera_index], pa.string()),
            pa.array(district_of_camera[camera_index], pa.string()),
            pa.array(rng.integers(0, 5_000, rows), pa.int64()),
            pa.array(labels, pa.string()),
            pa.array(rng.uniform(0.3, 1.0, rows)),
            pa.array(rng.uniform(0, 1920, rows)),
            pa.array(rng.uniform(0, 1080, rows)),
        ],
        schema=DETECTION_SCHEMA,
    )


def weather(
    duration_ms: int, start_ms: int = 1_767_225_600_000, every_ms: int = 1_000, stations_per_district: int = 2, seed: int = 0
) -> pa.Table:
    """A reading from every station every ``every_ms`` over ``duration_ms``, with a slow
    diurnal temperature swing and yellow-dust (PM10) episodes."""
    rng = np.random.default_rng(seed)
    stations = [(f"aws-{d}-{i}", d) for d in DISTRICTS for i in range(stations_per_district)]
    ticks = np.arange(start_ms, start_ms + duration_ms, every_ms, dtype=np.int64)
    ts = np.repeat(ticks, len(stations))
    station = np.tile(np.array([s for s, _ in stations], dtype=object), len(ticks))
    district = np.tile(np.array([d for _, d in stations], dtype=object), len(ticks))
    hours = (ts / 3_600_000.0) % 24
    n = len(ts)
    return pa.table(
        [
            pa.array(ts, pa.int64()).cast(pa.timestamp("ms", "UTC")),
            pa.array(station, pa.string()),
            pa.array(district, pa.string()),
            pa.array(8 + 6 * np.sin((hours - 9) / 24 * 2 * np.pi) + rng.normal(0, 0.3, n)),
            pa.array(np.abs(rng.normal(3, 1.5, n))),
            pa.array(np.abs(rng.normal(45, 20, n)) + 120 * (rng.random(n) < 0.05)),
            pa.array(np.maximum(rng.normal(-0.5, 1.0, n), 0)),
        ],
        schema=WEATHER_SCHEMA,
    )
