"""The job ``make run`` runs until the city issue lands: detections fused with the latest
weather of their district, counted per camera in 10-second windows, on the inline executor."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

from actors import synthetic
from engine import Dataflow, col
from operators import Tumbling, agg


def fusion_flow(rows: int = 200_000, parallelism: int = 1, seed: int = 7) -> Dataflow:
    """Detections as-of joined with district weather, then per-camera windowed counts."""
    duration_ms = int(rows / 10_000 * 1000) + 1_000
    flow = Dataflow("city-fusion-demo", parallelism=parallelism)
    detections = flow.from_table(
        "cameras",
        synthetic.detections(rows, seed=seed, disorder_ms=500),
        event_time="ts",
        out_of_orderness=timedelta(seconds=1),
        batch_size=5_000,
        validate={"confidence in [0, 1]": col("confidence").between(0.0, 1.0)},
    )
    stations = flow.from_table("stations", synthetic.weather(duration_ms, seed=seed), event_time="ts", batch_size=600)
    fused = detections.key_by("district").asof_join(
        stations.key_by("district"), tolerance=timedelta(seconds=30), right_prefix="weather_", name="district_fusion"
    )
    dusty = fused.filter(col("pm10") > 100.0, name="yellow_dust")
    dusty.key_by("camera").window(
        Tumbling(timedelta(seconds=10)),
        [agg("count", name="detections"), agg("count_distinct", "track_id", name="tracks"), agg("mean", "confidence")],
        name="per_camera_10s",
    ).collect("camera_counts")
    detections.dead_letter().collect("refused")
    return flow


def summarize(table: pa.Table) -> str:
    top = table.sort_by([("detections", "descending")]).slice(0, 5)
    lines = [
        f"{row['camera']}  {row['window_start']:%H:%M:%S}  detections={row['detections']}  tracks={row['tracks']}"
        for row in top.to_pylist()
    ]
    return "\n".join(lines)
