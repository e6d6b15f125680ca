"""In-process throughput of the engine's operators beside bare pyarrow doing the same work.

Each workload runs on the same detection-like data, cut into 10,000-row batches, once through
the engine (InlineExecutor, source -> operator -> counting sink, one core) and once as the
plain pyarrow calls that compute the same result batch by batch. The ratio is the figure that
matters. Run: ``make bench`` (or ``python -m benchmarks.engine_throughput``); figures go to
benchmarks/results/engine_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors import synthetic
from engine import Dataflow, InlineExecutor, col
from operators import Hopping, Session, Tumbling, agg

BATCH = 10_000
WINDOW_MS = 10_000
SLIDE_MS = 2_000
GAP_MS = 20
# Converted once, as the engine does with literals (pa.scalar of a Python value is slow).
THRESHOLD = pa.scalar(0.5)
RESULTS = Path(__file__).parent / "results"


def _engine(build: Callable[[Dataflow, pa.Table, pa.Table], None], data: pa.Table, weather: pa.Table) -> Callable[[], int]:
    def run() -> int:
        flow = Dataflow("bench")
        build(flow, data, weather)
        result = InlineExecutor().run(flow)
        return sum(r["rows"] for r in result.outputs["out"])

    return run


def _bins(times: pa.Array, width: int) -> pa.Array:
    values = times.cast(pa.int64()).to_numpy()
    return pa.array(values // width * width)


# ---- the workloads, as engine dataflows ------------------------------------------------------


def flow_filter(flow: Dataflow, data: pa.Table, weather: pa.Table) -> None:
    flow.from_table("src", data, "ts", BATCH).filter(col("confidence") > 0.5).count("out")


def flow_filter_tumbling(flow: Dataflow, data: pa.Table, weather: pa.Table) -> None:
    (
        flow.from_table("src", data, "ts", BATCH)
        .filter(col("confidence") > 0.5)
        .key_by("camera")
        .window(Tumbling(WINDOW_MS), [agg("count"), agg("mean", "confidence")])
        .count("out")
    )


def flow_hopping(flow: Dataflow, data: pa.Table, weather: pa.Table) -> None:
    (
        flow.from_table("src", data, "ts", BATCH)
        .key_by("camera")
        .window(Hopping(WINDOW_MS, SLIDE_MS), [agg("count"), agg("max", "confidence")])
        .count("out")
    )


def flow_session(flow: Dataflow, data: pa.Table, weather: pa.Table) -> None:
    (
        flow.from_table("src", data, "ts", BATCH)
        .key_by("camera")
        .window(Session(GAP_MS), [agg("count"), agg("max", "confidence")])
        .count("out")
    )


def flow_asof(flow: Dataflow, data: pa.Table, weather: pa.Table) -> None:
    left = flow.from_table("src", data, "ts", BATCH).key_by("district")
    right = flow.from_table("wx", weather, "ts", 600).key_by("district")
    left.asof_join(right, tolerance=30_000).count("out")


# ---- the same work in bare pyarrow, batch by batch ---------------------------------------------


def bare_filter(batches: list[pa.RecordBatch], weather: pa.Table) -> int:
    return sum(b.filter(pc.greater(b.column("confidence"), THRESHOLD)).num_rows for b in batches)


def bare_filter_tumbling(batches: list[pa.RecordBatch], weather: pa.Table) -> int:
    partials = []
    for b in batches:
        kept = b.filter(pc.greater(b.column("confidence"), THRESHOLD))
        t = pa.table(
            {"camera": kept.column("camera"), "bin": _bins(kept.column("ts"), WINDOW_MS), "c": kept.column("confidence")}
        )
        partials.append(
            t.group_by(["camera", "bin"], use_threads=False).aggregate([([], "count_all"), ("c", "sum"), ("c", "count")])
        )
    merged = (
        pa.concat_tables(partials)
        .group_by(["camera", "bin"], use_threads=False)
        .aggregate([("count_all", "sum"), ("c_sum", "sum"), ("c_count", "sum")])
    )
    return merged.num_rows


def bare_hopping(batches: list[pa.RecordBatch], weather: pa.Table) -> int:
    partials = []
    for b in batches:
        t = pa.table({"camera": b.column("camera"), "bin": _bins(b.column("ts"), SLIDE_MS), "c": b.column("confidence")})
        partials.append(t.group_by(["camera", "bin"], use_threads=False).aggregate([([], "count_all"), ("c", "max")]))
    state = pa.concat_tables(partials)
    expanded = [state.set_column(1, "bin", pc.subtract(state.column("bin"), k * SLIDE_MS)) for k in range(WINDOW_MS // SLIDE_MS)]
    return (
        pa.concat_tables(expanded)
        .group_by(["camera", "bin"], use_threads=False)
        .aggregate([("count_all", "sum"), ("c_max", "max")])
        .num_rows
    )


def bare_session(batches: list[pa.RecordBatch], weather: pa.Table) -> int:
    t = (
        pa.Table.from_batches(batches)
        .select(["camera", "ts", "confidence"])
        .sort_by([("camera", "ascending"), ("ts", "ascending")])
    )
    times = t.column("ts").cast(pa.int64()).to_numpy()
    cameras = t.column("camera").to_numpy(zero_copy_only=False)
    starts = np.ones(len(times), dtype=bool)
    starts[1:] = (np.diff(times) >= GAP_MS) | (cameras[1:] != cameras[:-1])
    t = t.append_column("sid", pa.array(np.cumsum(starts)))
    return t.group_by(["camera", "sid"], use_threads=False).aggregate([([], "count_all"), ("confidence", "max")]).num_rows


def bare_asof(batches: list[pa.RecordBatch], weather: pa.Table) -> int:
    left = pa.Table.from_batches(batches).select(["ts", "district", "camera", "confidence"]).sort_by("ts")
    right = weather.sort_by("ts")
    return left.join_asof(right, on="ts", by="district", tolerance=-30_000).num_rows


WORKLOADS = {
    "filter": (flow_filter, bare_filter),
    "filter + tumbling aggregate": (flow_filter_tumbling, bare_filter_tumbling),
    "hopping aggregate": (flow_hopping, bare_hopping),
    "session window": (flow_session, bare_session),
    "as-of join": (flow_asof, bare_asof),
}


def measure(fn: Callable[[], int], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    data = synthetic.detections(args.rows, rate_per_s=20_000, seed=1)
    duration = int(args.rows / 20_000 * 1000) + 1000
    weather = synthetic.weather(duration, seed=1)
    batches = data.to_batches(max_chunksize=BATCH)
    rows = []
    for name, (build, bare) in WORKLOADS.items():
        if args.only and name not in args.only:
            continue
        engine_s = measure(_engine(build, data, weather), args.repeats)
        bare_s = measure(partial(bare, batches, weather), args.repeats)
        rows.append(
            {
                "workload": name,
                "rows": args.rows,
                "engine_rows_per_s": args.rows / engine_s,
                "pyarrow_rows_per_s": args.rows / bare_s,
                "ratio": bare_s / engine_s,
            }
        )
        print(
            f"{name:30s} engine {args.rows / engine_s / 1e6:7.2f} M rows/s   "
            f"pyarrow {args.rows / bare_s / 1e6:7.2f} M rows/s   ratio {bare_s / engine_s:.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "machine": platform.machine(),
        "batch_rows": BATCH,
        "repeats": args.repeats,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (RESULTS / "engine_throughput.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = [
        "# Engine throughput (one core, inline executor, 10,000-row batches)",
        "",
        f"{meta['when']}, Python {meta['python']}, pyarrow {meta['pyarrow']}, {args.rows:,} rows, median of {args.repeats}",
        "",
        "| workload | engine rows/s | bare pyarrow rows/s | engine / pyarrow |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['workload']} | {r['engine_rows_per_s']:,.0f} | {r['pyarrow_rows_per_s']:,.0f} | {r['ratio']:.2f} |" for r in rows
    ]
    (RESULTS / "engine_throughput.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
