"""The Ray executor (engine.ray_executor) against bare Ray actors doing the same work.

Three parts, all on a source -> keyed stateless operator -> counting sink chain, one actor per stage
(the plan is checked to have 3 vertices: ``key_by`` before the operator and ``rebalance()`` before
the sink keep the stages apart):

1. Throughput (rows/s) with 1,000- and 10,000-row batches of a detection-like schema, pre-built in
   the driver and cycled by a ``GeneratorSource`` (generation is not measured); channels with
   ``batch_rows`` equal to the batch size, 8 credits, 5 ms linger. Beside it, a bare Ray chain of
   three plain actors (up to 8 calls in flight per hop, with ``ray.wait``) doing the same
   ``pyarrow.compute`` step. Two rates for each: rows over the wall time of ``job.wait()`` (the
   sources are running when ``submit`` returns; actor start-up is excluded) and rows over the time
   between the sink's first and last batch (steady state). Overhead = 1 - engine / bare.
2. Latency at 1,000 rows/s (10-row batches every 10 ms), linger_ms=0: the tasks' hop-latency
   samples (``TaskMetrics.hop_latency_ms``) and the end-to-end latency of every row (the sink
   subtracts the scheduled emission time that the source writes in a column).
3. Memory under backpressure: an unthrottled source of 10,000-row batches in front of a sink task
   that sleeps 20 ms per batch, credits 8; every 5 s the RSS of each actor process (from
   /proc/PID/status), the object store use (the raylet's store stats, read with
   ``ray._private.internal_api.get_memory_info_reply``) and the source's backpressure time. Then a
   graceful ``job.stop()`` and a check that the sink counted every row the source emitted.

Run: ``python -m benchmarks.ray_executor [--quick]``; figures go to
benchmarks/results/ray_executor.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ["RAY_AUTH_MODE"] = "disabled"

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from benchmarks.procinfo import object_store, proc_memory
from engine import ChannelOptions, Dataflow, GeneratorSource, build_plan
from engine.operator import Collector, Sink
from engine.ray_executor import RayExecutor, RayJob

RESULTS = Path(__file__).parent / "results"
DISTRICTS = ("songdo", "yeongjong", "cheongna", "guwol", "juan", "bupyeong", "gyeyang")
CAMERAS = 200
BASE_TS = 1_767_225_600_000
CREDITS = 8
TWO = pa.scalar(2.0)  # converted once: pa.scalar of a Python value costs more than the multiply
SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("camera", pa.string()),
        ("district", pa.string()),
        ("confidence", pa.float64()),
        ("x", pa.float64()),
        ("y", pa.float64()),
    ]
)
LATENCY_SCHEMA = SCHEMA.append(pa.field("sched_ns", pa.int64())).append(pa.field("emit_ns", pa.int64()))


def make_batches(rows: int, count: int, seed: int = 1) -> list[pa.RecordBatch]:
    """``count`` detection-like batches of ``rows`` rows, each with buffers of its own (no slices
    of a shared buffer, which could be serialized whole)."""
    rng = np.random.default_rng(seed)
    districts = np.array(DISTRICTS, dtype=object)
    cameras = np.array([f"cam-{i:04d}" for i in range(CAMERAS)], dtype=object)
    out = []
    for i in range(count):
        ts = BASE_TS + (i * rows + np.arange(rows, dtype=np.int64)) * 5
        camera = rng.integers(0, CAMERAS, rows)
        out.append(
            pa.record_batch(
                [
                    pa.array(ts, pa.int64()),
                    pa.array(cameras[camera], pa.string()),
                    pa.array(districts[camera % len(DISTRICTS)], pa.string()),
                    pa.array(rng.uniform(0.3, 1.0, rows)),
                    pa.array(rng.uniform(0, 1920, rows)),
                    pa.array(rng.uniform(0, 1080, rows)),
                ],
                schema=SCHEMA,
            )
        )
    return out


# ---- what runs in the actors (module level, so that Ray workers import it) ---------------------


def double_confidence(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The keyed stateless step of every chain: one vectorised pyarrow.compute call."""
    return batch.append_column("confidence2", pc.multiply(batch.column("confidence"), TWO))


def slow_step(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The deliberately slow sink step of part 3: 20 ms per batch."""
    time.sleep(0.020)
    return batch


class CycleBatches:
    """Generator factory for ``GeneratorSource``: cycles pre-built batches until ``total_rows``
    rows are out (forever if None)."""

    def __init__(self, batches: list[pa.RecordBatch], total_rows: int | None) -> None:
        self.batches = batches
        self.total_rows = total_rows

    def __call__(self, partition: int, partitions: int) -> Iterator[pa.RecordBatch | None]:
        batches, total = self.batches, self.total_rows
        sent = 0
        index = 0
        while total is None or sent < total:
            batch = batches[index]
            index = (index + 1) % len(batches)
            sent += batch.num_rows
            yield batch


class PacedBatches:
    """Generator factory for part 2: ``count`` small batches, one every ``interval_s``, each
    carrying its scheduled emission time (``sched_ns``) and the time it was actually produced
    (``emit_ns``), both ``time.time_ns()``. Between batches it yields None (idle) until 2 ms
    before the next one is due, then sleeps the rest so that emission is on time."""

    def __init__(self, template: pa.RecordBatch, count: int, interval_s: float) -> None:
        self.template = template
        self.count = count
        self.interval_s = interval_s

    def __call__(self, partition: int, partitions: int) -> Iterator[pa.RecordBatch | None]:
        rows = self.template.num_rows
        columns = list(self.template.columns)
        start = time.time() + 0.005
        k = 0
        while k < self.count:
            due = start + k * self.interval_s
            remaining = due - time.time()
            if remaining > 0.002:
                yield None
                continue
            if remaining > 0:
                time.sleep(remaining)
            sched_ns = int(due * 1e9)
            emit_ns = time.time_ns()
            columns[0] = pa.array(np.full(rows, emit_ns // 1_000_000, dtype=np.int64))
            yield pa.RecordBatch.from_arrays(
                [*columns, pa.array(np.full(rows, sched_ns, dtype=np.int64)), pa.array(np.full(rows, emit_ns, dtype=np.int64))],
                schema=LATENCY_SCHEMA,
            )
            k += 1


class TimedCountSink(Sink):
    """Counts rows and batches and remembers when (``time.time()``) the first and last batch came."""

    def __init__(self) -> None:
        self.rows = 0
        self.batches = 0
        self.first_rows = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        now = time.time()
        if self.first_at is None:
            self.first_at = now
            self.first_rows = batch.num_rows
        self.last_at = now
        self.rows += batch.num_rows
        self.batches += 1

    def result(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "batches": self.batches,
            "first_rows": self.first_rows,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


class LatencySink(Sink):
    """Keeps, for every row, now minus its scheduled and its actual emission time (ms)."""

    def __init__(self) -> None:
        self.rows = 0
        self.from_sched: list[np.ndarray] = []
        self.from_emit: list[np.ndarray] = []
        self.sched_ns: list[np.ndarray] = []

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        now = time.time_ns()
        sched = batch.column("sched_ns").to_numpy()
        emit = batch.column("emit_ns").to_numpy()
        self.from_sched.append((now - sched) / 1e6)
        self.from_emit.append((now - emit) / 1e6)
        self.sched_ns.append(sched)
        self.rows += batch.num_rows

    def result(self) -> dict[str, Any]:
        def join(parts: list[np.ndarray]) -> list[float]:
            return np.concatenate(parts).tolist() if parts else []

        return {
            "rows": self.rows,
            "from_sched_ms": join(self.from_sched),
            "from_emit_ms": join(self.from_emit),
            "sched_ns": join(self.sched_ns),
        }


# ---- bare Ray: the same chain as three plain actors -----------------------------------------


def _window(in_flight: list[ray.ObjectRef], limit: int) -> list[ray.ObjectRef]:
    while len(in_flight) >= limit:
        _, in_flight = ray.wait(in_flight, num_returns=1, fetch_local=False)
    return in_flight


@ray.remote
class BareSink:
    """Counts like ``TimedCountSink``; records the hop latency of every call and, for batches
    with a ``sched_ns`` column (part 2), the end-to-end latency of every row."""

    def __init__(self) -> None:
        self.sink = TimedCountSink()
        self.collector = Collector({})
        self.hops: list[float] = []
        self.end_to_end: list[np.ndarray] = []
        self.sched_ns: list[np.ndarray] = []

    def push(self, batch: pa.RecordBatch, sent_ns: int) -> None:
        now = time.time_ns()
        self.hops.append((now - sent_ns) / 1e6)
        if "sched_ns" in batch.schema.names:
            sched = batch.column("sched_ns").to_numpy()
            self.end_to_end.append((now - sched) / 1e6)
            self.sched_ns.append(sched)
        self.sink.process_batch(batch, 0, self.collector)

    def result(self) -> dict[str, Any]:
        return {
            **self.sink.result(),
            "hops_ms": self.hops,
            "from_sched_ms": np.concatenate(self.end_to_end).tolist() if self.end_to_end else [],
            "sched_ns": np.concatenate(self.sched_ns).tolist() if self.sched_ns else [],
        }


@ray.remote
class BareMid:
    def __init__(self, sink: Any, credits: int) -> None:
        self.sink = sink
        self.credits = credits
        self.in_flight: list[ray.ObjectRef] = []
        self.hops: list[float] = []

    def push(self, batch: pa.RecordBatch, sent_ns: int) -> None:
        self.hops.append((time.time_ns() - sent_ns) / 1e6)
        out = double_confidence(batch)
        self.in_flight = _window(self.in_flight, self.credits)
        self.in_flight.append(self.sink.push.remote(out, time.time_ns()))

    def drain(self) -> list[float]:
        """Waits for every call to the sink; returns the hop latencies seen."""
        ray.get(self.in_flight)
        self.in_flight = []
        return self.hops


@ray.remote
class BareSource:
    def __init__(self, mid: Any, credits: int) -> None:
        self.mid = mid
        self.credits = credits

    def ready(self) -> bool:
        return True

    def run(self, make: CycleBatches | PacedBatches) -> int:
        """Sends what the generator ``make`` yields (sleeping 1 ms when it is idle, as the
        engine's source loop does); returns the rows sent once the sink has everything."""
        in_flight: list[ray.ObjectRef] = []
        sent = 0
        for batch in make(0, 1):
            if batch is None:
                time.sleep(0.001)
                continue
            in_flight = _window(in_flight, self.credits)
            in_flight.append(self.mid.push.remote(batch, time.time_ns()))
            sent += batch.num_rows
        ray.get(in_flight)
        ray.get(self.mid.drain.remote())
        return sent


def bare_chain() -> tuple[Any, Any, Any]:
    """Three fresh bare actors, started."""
    sink = BareSink.remote()  # type: ignore[attr-defined]
    mid = BareMid.remote(sink, CREDITS)  # type: ignore[attr-defined]
    source = BareSource.remote(mid, CREDITS)  # type: ignore[attr-defined]
    ray.get([source.ready.remote(), mid.drain.remote(), sink.result.remote()])
    return source, mid, sink


# ---- helpers ----------------------------------------------------------------------------------


def percentiles(values: list[float] | np.ndarray) -> dict[str, float | int | None]:
    if len(values) == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    return {
        "n": len(array),
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


def halved(p: dict[str, float | int | None]) -> dict[str, float | None]:
    """Per-hop figures from end-to-end ones over the chain's two hops."""
    return {k: None if (v := p[k]) is None else v / 2 for k in ("p50", "p99", "max")}


def three_stage_plan_check(flow: Dataflow) -> str:
    explain = build_plan(flow).explain()
    vertices = len(build_plan(flow).vertices)
    if vertices != 3:
        raise RuntimeError(f"expected 3 vertices, got {vertices}:\n{explain}")
    return explain


# ---- part 1: throughput -------------------------------------------------------------------------


def throughput_flow(batches: list[pa.RecordBatch], total_rows: int) -> Dataflow:
    flow = Dataflow("ray_throughput")
    stream = flow.source("src", GeneratorSource(SCHEMA, CycleBatches(batches, total_rows)), event_time="ts")
    schema = stream.schema.append(pa.field("confidence2", pa.float64()))
    stream.key_by("district").map_batches(double_confidence, schema, name="mid").rebalance().sink(TimedCountSink(), name="sink")
    return flow


def steady_rate(sink: dict[str, Any]) -> float | None:
    if sink["first_at"] is None or sink["last_at"] is None or sink["last_at"] <= sink["first_at"]:
        return None
    return (sink["rows"] - sink["first_rows"]) / (sink["last_at"] - sink["first_at"])


def run_engine(batches: list[pa.RecordBatch], batch_rows: int, total_rows: int) -> dict[str, Any]:
    flow = throughput_flow(batches, total_rows)
    executor = RayExecutor(channels=ChannelOptions(credits=CREDITS, batch_rows=batch_rows, linger_ms=5))
    t0 = time.perf_counter()
    job = executor.submit(flow)
    t1 = time.perf_counter()
    result = job.wait(timeout=600)
    t2 = time.perf_counter()
    sink = result.outputs["sink"][0]
    metrics = result.metrics
    if sink["rows"] != total_rows:
        raise RuntimeError(f"engine sink counted {sink['rows']} rows, expected {total_rows}")
    return {
        "rows": sink["rows"],
        "startup_s": t1 - t0,
        "wait_s": t2 - t1,
        "steady_s": sink["last_at"] - sink["first_at"],
        "rows_per_s_wait": sink["rows"] / (t2 - t1),
        "rows_per_s_steady": steady_rate(sink),
        "frames_out": {name: m.frames_out for name, m in metrics.items()},
        "backpressure_s": {name: round(m.backpressure_s, 3) for name, m in metrics.items()},
        "max_in_flight": {name: m.max_in_flight for name, m in metrics.items()},
        "batch_latency_ms_p50": {name: percentiles(m.batch_latency_ms)["p50"] for name, m in metrics.items()},
    }


def run_bare(batches: list[pa.RecordBatch], total_rows: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    source, mid, sink = bare_chain()
    try:
        t1 = time.perf_counter()
        sent = ray.get(source.run.remote(CycleBatches(batches, total_rows)), timeout=600)
        t2 = time.perf_counter()
        result = ray.get(sink.result.remote())
    finally:
        for actor in (source, mid, sink):
            ray.kill(actor, no_restart=True)
    if result["rows"] != sent:
        raise RuntimeError(f"bare sink counted {result['rows']} rows, source sent {sent}")
    return {
        "rows": result["rows"],
        "startup_s": t1 - t0,
        "wait_s": t2 - t1,
        "steady_s": result["last_at"] - result["first_at"],
        "rows_per_s_wait": result["rows"] / (t2 - t1),
        "rows_per_s_steady": steady_rate(result),
    }


def part_throughput(rows: int, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows_per_run": rows, "repeats": repeats, "configs": []}
    data = {size: make_batches(size, count, seed=size) for size, count in ((1_000, 64), (10_000, 16))}
    out["plan"] = three_stage_plan_check(throughput_flow(data[1_000], rows))
    log(out["plan"])
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for round_ in range(repeats):
        for size, batches in data.items():
            for variant in ("engine", "bare"):
                run = run_engine(batches, size, rows) if variant == "engine" else run_bare(batches, rows)
                runs.setdefault((size, variant), []).append(run)
                log(
                    f"  round {round_ + 1} batch {size:>6} {variant:6s}: wait {run['wait_s']:.2f} s "
                    f"{run['rows_per_s_wait'] / 1e6:.2f} M rows/s, steady {(run['rows_per_s_steady'] or 0) / 1e6:.2f} M rows/s "
                    f"(start-up {run['startup_s']:.2f} s)"
                )
    for size in data:
        config: dict[str, Any] = {"batch_rows": size, "batch_bytes": data[size][0].nbytes}
        for variant in ("engine", "bare"):
            variant_runs = runs[(size, variant)]
            config[variant] = {
                "runs": variant_runs,
                "median_rows_per_s_wait": statistics.median(r["rows_per_s_wait"] for r in variant_runs),
                "median_rows_per_s_steady": statistics.median(r["rows_per_s_steady"] or 0.0 for r in variant_runs),
                "median_startup_s": statistics.median(r["startup_s"] for r in variant_runs),
            }
        for measure in ("wait", "steady"):
            engine = config["engine"][f"median_rows_per_s_{measure}"]
            bare = config["bare"][f"median_rows_per_s_{measure}"]
            config[f"overhead_{measure}"] = 1 - engine / bare if bare else None
        out["configs"].append(config)
    return out


# ---- part 2: latency at a low rate ------------------------------------------------------------


def part_latency(duration_s: float, warmup_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    interval_s, rows = 0.010, 10
    count = int(duration_s / interval_s)
    template = make_batches(rows, 1, seed=7)[0]
    flow = Dataflow("ray_latency")
    stream = flow.source("src", GeneratorSource(LATENCY_SCHEMA, PacedBatches(template, count, interval_s)), event_time="ts")
    schema = stream.schema.append(pa.field("confidence2", pa.float64()))
    stream.key_by("district").map_batches(double_confidence, schema, name="mid").rebalance().sink(LatencySink(), name="sink")
    plan = three_stage_plan_check(flow)
    executor = RayExecutor(channels=ChannelOptions(credits=CREDITS, batch_rows=10_000, linger_ms=0))
    job = executor.submit(flow)
    result = job.wait(timeout=duration_s + 120)
    sink = result.outputs["sink"][0]
    if sink["rows"] != count * rows:
        raise RuntimeError(f"latency sink counted {sink['rows']} rows, expected {count * rows}")
    sched = np.asarray(sink["sched_ns"], dtype=np.int64)
    steady = sched >= sched.min() + int(warmup_s * 1e9)
    from_sched = np.asarray(sink["from_sched_ms"])
    from_emit = np.asarray(sink["from_emit_ms"])
    out: dict[str, Any] = {
        "plan": plan,
        "rows_per_s": rows / interval_s,
        "batch_rows": rows,
        "interval_ms": interval_s * 1000,
        "duration_s": duration_s,
        "warmup_excluded_s": warmup_s,
        "rows": sink["rows"],
        "hop_latency_ms": {},
        "batch_latency_ms": {},
        "frames_in": {},
        "end_to_end_ms": {
            "from_scheduled_all": percentiles(from_sched),
            "from_scheduled_after_warmup": percentiles(from_sched[steady]),
            "from_emitted_after_warmup": percentiles(from_emit[steady]),
        },
    }
    for name, metrics in result.metrics.items():
        out["frames_in"][name] = metrics.frames_in
        if name != "src[0]":
            out["hop_latency_ms"][name] = percentiles(metrics.hop_latency_ms)
            out["batch_latency_ms"][name] = percentiles(metrics.batch_latency_ms)
    e2e = out["end_to_end_ms"]["from_scheduled_after_warmup"]
    out["per_hop_from_end_to_end_ms"] = halved(e2e)
    log(f"  engine hop latency {out['hop_latency_ms']}")
    log(f"  engine end-to-end {out['end_to_end_ms']}")
    out["bare"] = bare_latency(PacedBatches(template, count, interval_s), count * rows, warmup_s)
    log(f"  bare {out['bare']}")
    return out


def bare_latency(make: PacedBatches, rows: int, warmup_s: float) -> dict[str, Any]:
    """The same paced batches through the bare chain: hop latencies and end to end per row."""
    source, mid, sink = bare_chain()
    try:
        sent = ray.get(source.run.remote(make), timeout=make.count * make.interval_s + 120)
        mid_hops = ray.get(mid.drain.remote())
        result = ray.get(sink.result.remote())
    finally:
        for actor in (source, mid, sink):
            ray.kill(actor, no_restart=True)
    if sent != rows or result["rows"] != rows:
        raise RuntimeError(f"bare latency chain: sent {sent}, counted {result['rows']}, expected {rows}")
    sched = np.asarray(result["sched_ns"], dtype=np.int64)
    steady = sched >= sched.min() + int(warmup_s * 1e9)
    from_sched = np.asarray(result["from_sched_ms"])
    e2e = percentiles(from_sched[steady])
    return {
        "hop_latency_ms": {"mid": percentiles(mid_hops), "sink": percentiles(result["hops_ms"])},
        "end_to_end_ms": {"from_scheduled_all": percentiles(from_sched), "from_scheduled_after_warmup": e2e},
        "per_hop_from_end_to_end_ms": halved(e2e),
    }


# ---- part 3: memory under backpressure ----------------------------------------------------------


def memory_flow(batches: list[pa.RecordBatch]) -> Dataflow:
    flow = Dataflow("ray_backpressure")
    stream = flow.source("src", GeneratorSource(SCHEMA, CycleBatches(batches, None)), event_time="ts")
    schema = stream.schema.append(pa.field("confidence2", pa.float64()))
    (
        stream.key_by("district")
        .map_batches(double_confidence, schema, name="mid")
        .rebalance()
        .map_batches(slow_step, schema, name="slow")
        .sink(TimedCountSink(), name="sink")
    )
    return flow


def sample(job: RayJob, started: float) -> dict[str, Any]:
    at = time.perf_counter() - started
    rss = {name: proc_memory(info["pid"]) for name, info in job.tasks.items()}
    store = object_store()
    asked = time.perf_counter()
    metrics = job.metrics(timeout=5.0)
    metrics_s = time.perf_counter() - asked
    return {
        "t_s": round(at, 2),
        "rss_kib": rss,
        "object_store": store,
        "metrics_call_s": round(metrics_s, 3),
        "backpressure_s": {name: round(m.backpressure_s, 3) for name, m in metrics.items()},
        "rows_in": {name: m.rows_in for name, m in metrics.items()},
        "max_in_flight": {name: m.max_in_flight for name, m in metrics.items()},
    }


def part_memory(duration_s: float, every_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    batches = make_batches(10_000, 16, seed=3)
    flow = memory_flow(batches)
    plan = three_stage_plan_check(flow)
    executor = RayExecutor(channels=ChannelOptions(credits=CREDITS, batch_rows=10_000, linger_ms=5))
    store_before = object_store()
    job = executor.submit(flow)
    started = time.perf_counter()
    samples = []
    try:
        next_at = started
        while True:
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            samples.append(sample(job, started))
            s = samples[-1]
            log(
                f"  t={s['t_s']:6.1f} s rss MiB "
                + ", ".join(f"{n}={(r or {}).get('VmRSS', 0) / 1024:.0f}" for n, r in s["rss_kib"].items())
                + f"; store {s['object_store']['bytes_used'] / 2**20:.1f} MiB / {s['object_store']['objects']} objects"
                f"; src backpressure {s['backpressure_s'].get('src[0]')} s; rows in {s['rows_in']}"
                f"; metrics() took {s['metrics_call_s']} s"
            )
            next_at += every_s
            if next_at - started > duration_s + 1e-6:
                break
        stop_started = time.perf_counter()
        result = job.stop(timeout=120)
        stop_s = time.perf_counter() - stop_started
    except BaseException:
        job.cancel()
        raise
    store_after = object_store()
    time.sleep(2.0)
    store_after_2s = object_store()
    emitted = result.metrics["src[0]"].rows_in
    counted = result.outputs["sink"][0]["rows"]
    rss_summary: dict[str, Any] = {}
    for name in samples[0]["rss_kib"]:
        values = [s["rss_kib"][name]["VmRSS"] for s in samples if s["rss_kib"].get(name)]
        anon = [s["rss_kib"][name]["RssAnon"] for s in samples if s["rss_kib"].get(name)]
        rss_summary[name] = {
            "first_mib": values[0] / 1024,
            "last_mib": values[-1] / 1024,
            "max_mib": max(values) / 1024,
            "anon_first_mib": anon[0] / 1024,
            "anon_last_mib": anon[-1] / 1024,
            "anon_max_mib": max(anon) / 1024,
        }
    store_used = [s["object_store"]["bytes_used"] for s in samples]
    out = {
        "plan": plan,
        "duration_s": duration_s,
        "sample_every_s": every_s,
        "slow_step_ms": 20,
        "object_store_method": "ray._private.internal_api.get_memory_info_reply(ray._private.state.state).store_stats"
        " (object_store_bytes_used, num_local_objects); the object_store_memory resource difference is kept beside it",
        "samples": samples,
        "rss": rss_summary,
        "object_store_before": store_before,
        "object_store_after": store_after,
        "object_store_2s_after": store_after_2s,
        "object_store_max_bytes": max(store_used),
        "object_store_last_bytes": store_used[-1],
        "stop_s": stop_s,
        "source_rows_emitted": emitted,
        "sink_rows_counted": counted,
        "rows_match": emitted == counted,
        "final_backpressure_s": {name: round(m.backpressure_s, 3) for name, m in result.metrics.items()},
        "sink_rate_rows_per_s": steady_rate(result.outputs["sink"][0]),
    }
    log(f"  stop took {stop_s:.2f} s; source emitted {emitted}, sink counted {counted}, match {emitted == counted}")
    return out


# ---- report -----------------------------------------------------------------------------------


def _m(value: float | None, scale: float = 1e6, digits: int = 2) -> str:
    return "—" if value is None else f"{value / scale:.{digits}f}"


def _ms(value: float | int | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _row(label: str, p: dict[str, Any]) -> str:
    return f"| {label} | {p.get('n', '')} | {_ms(p['p50'])} | {_ms(p['p99'])} | {_ms(p['max'])} |"


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    tp = report["throughput"]
    lines = [
        "# Ray executor: throughput, latency and memory under backpressure (3-stage chain, one actor per stage)",
        "",
        f"{meta['when']}, {meta['cpus']} CPUs, Python {meta['python']}, pyarrow {meta['pyarrow']}, Ray {meta['ray']}"
        f"{', --quick' if meta['quick'] else ''}. Load average (1/5/15 min) at start {meta['loadavg_start']}, "
        f"at end {meta['loadavg_end']}.",
        "",
        f"## 1. Throughput (median of {tp['repeats']} runs, {tp['rows_per_run']:,} rows per run, credits {CREDITS}, linger 5 ms)",
        "",
        "Engine: source -> key_by -> map_batches(confidence * 2) -> rebalance -> counting sink. Bare: three plain Ray actors, "
        "up to 8 calls in flight per hop. *wait*: rows / wall time of `job.wait()` (bare: of the source's run call); "
        "*steady*: rows / time between the sink's first and last batch. Overhead = 1 - engine / bare. The plan:",
        "",
        "```",
        tp["plan"],
        "```",
        "",
        "| batch rows | batch KiB | engine M rows/s (wait) | bare M rows/s (wait) | overhead (wait) "
        "| engine M rows/s (steady) | bare M rows/s (steady) | overhead (steady) | engine start-up s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in tp["configs"]:
        lines.append(
            f"| {c['batch_rows']:,} | {c['batch_bytes'] / 1024:.0f} "
            f"| {_m(c['engine']['median_rows_per_s_wait'])} | {_m(c['bare']['median_rows_per_s_wait'])} "
            f"| {c['overhead_wait']:.0%} "
            f"| {_m(c['engine']['median_rows_per_s_steady'])} | {_m(c['bare']['median_rows_per_s_steady'])} "
            f"| {c['overhead_steady']:.0%} | {c['engine']['median_startup_s']:.2f} |"
        )
    lines += ["", "Every run (M rows/s, wait / steady):", ""]
    for c in tp["configs"]:
        for variant in ("engine", "bare"):
            runs = ", ".join(f"{_m(r['rows_per_s_wait'])} / {_m(r['rows_per_s_steady'])}" for r in c[variant]["runs"])
            lines.append(f"- {c['batch_rows']:,} rows, {variant}: {runs}")
    lat = report["latency"]
    e2e = lat["end_to_end_ms"]
    lines += [
        "",
        f"## 2. Latency at {lat['rows_per_s']:,.0f} rows/s ({lat['batch_rows']}-row batches every {lat['interval_ms']:.0f} ms, "
        f"{lat['duration_s']:.0f} s, linger_ms=0)",
        "",
        "| measure | n | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, p in lat["hop_latency_ms"].items():
        lines.append(_row(f"hop latency into {name} (TaskMetrics, all frames)", p))
    for name, p in lat["batch_latency_ms"].items():
        lines.append(_row(f"processing time per frame in {name}", p))
    warmup = f"after the first {lat['warmup_excluded_s']:.0f} s"
    labels = {
        "from_scheduled_all": "end to end per row, from scheduled emission, all rows",
        "from_scheduled_after_warmup": f"end to end per row, from scheduled emission, {warmup}",
        "from_emitted_after_warmup": f"end to end per row, from actual emission, {warmup}",
    }
    for key, label in labels.items():
        lines.append(_row(label, e2e[key]))
    lines.append(_row(f"per hop = end to end (from scheduled, {warmup}) / 2", lat["per_hop_from_end_to_end_ms"]))
    bare = lat["bare"]
    lines += [
        "",
        "Bare Ray chain, same paced batches (plain actors, time.time_ns() at each call and at its start):",
        "",
        "| measure | n | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        _row("bare hop latency into mid", bare["hop_latency_ms"]["mid"]),
        _row("bare hop latency into sink", bare["hop_latency_ms"]["sink"]),
        _row("bare end to end per row, from scheduled emission, all rows", bare["end_to_end_ms"]["from_scheduled_all"]),
        _row(f"bare end to end per row, from scheduled emission, {warmup}", bare["end_to_end_ms"]["from_scheduled_after_warmup"]),
        _row(f"bare per hop = end to end ({warmup}) / 2", bare["per_hop_from_end_to_end_ms"]),
    ]
    mem = report["memory"]
    lines += [
        "",
        f"## 3. Memory under backpressure ({mem['duration_s']:.0f} s, unthrottled source of 10,000-row batches, "
        f"sink task sleeping {mem['slow_step_ms']} ms per batch, credits {CREDITS})",
        "",
        "RSS is VmRSS of each actor process (it counts object-store pages the process has mapped); anon is RssAnon "
        f"(its private heap). Object store: {mem['object_store_method']}.",
        "",
        "| task | RSS first MiB | RSS last MiB | RSS max MiB | anon first MiB | anon last MiB | anon max MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in mem["rss"].items():
        lines.append(
            f"| {name} | {r['first_mib']:.0f} | {r['last_mib']:.0f} | {r['max_mib']:.0f} "
            f"| {r['anon_first_mib']:.0f} | {r['anon_last_mib']:.0f} | {r['anon_max_mib']:.0f} |"
        )
    names = list(mem["rss"])
    lines += [
        "",
        "| t s | " + " | ".join(f"{n} RSS MiB" for n in names) + " | object store MiB | objects | store (resource diff) MiB "
        "| src backpressure s | src rows | sink rows | metrics() s |",
        "|---:|" + "---:|" * len(names) + "---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in mem["samples"]:
        rss = " | ".join(f"{(s['rss_kib'].get(n) or {}).get('VmRSS', 0) / 1024:.0f}" for n in names)
        store = s["object_store"]
        lines.append(
            f"| {s['t_s']:.1f} | {rss} | {store['bytes_used'] / 2**20:.1f} | {store['objects']} "
            f"| {store['resource_diff_bytes'] / 2**20:.1f} | {s['backpressure_s'].get('src[0]', '—')} "
            f"| {s['rows_in'].get('src[0]', '—'):,} | {s['rows_in'].get('slow[0]', '—'):,} | {s['metrics_call_s']} |"
        )
    lines += [
        "",
        f"Graceful `job.stop()` took {mem['stop_s']:.2f} s; the source emitted {mem['source_rows_emitted']:,} rows, the sink "
        f"counted {mem['sink_rows_counted']:,} ({'match' if mem['rows_match'] else 'MISMATCH'}); sink rate "
        f"{_m(mem['sink_rate_rows_per_s'], 1e3, 0)} k rows/s; final backpressure time {mem['final_backpressure_s']}. "
        f"Object store after the job: {mem['object_store_after']['bytes_used'] / 2**20:.1f} MiB, "
        f"{mem['object_store_after']['objects']} objects; 2 s later "
        f"{mem['object_store_2s_after']['bytes_used'] / 2**20:.1f} MiB, {mem['object_store_2s_after']['objects']} objects.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows, shorter latency and memory runs (~2 min)")
    parser.add_argument("--rows", type=int, default=None, help="rows per throughput run (default 3 M, --quick 1 M)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-s", type=float, default=None, help="default 10 s, --quick 5 s")
    parser.add_argument("--memory-s", type=float, default=None, help="default 60 s, --quick 15 s")
    parser.add_argument("--only", nargs="*", choices=("throughput", "latency", "memory"), default=None)
    args = parser.parse_args(argv)
    rows = args.rows or (1_000_000 if args.quick else 3_000_000)
    latency_s = args.latency_s or (5.0 if args.quick else 10.0)
    memory_s = args.memory_s or (15.0 if args.quick else 60.0)
    parts = set(args.only or ("throughput", "latency", "memory"))

    def log(text: str) -> None:
        print(text, flush=True)

    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "ray": ray.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    started = time.perf_counter()
    # A local instance of our own (address="local"): other Ray instances may run on this machine.
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    report: dict[str, Any] = {"meta": meta}
    try:
        if "throughput" in parts:
            log(f"1. throughput, {rows:,} rows per run, {args.repeats} repeats")
            report["throughput"] = part_throughput(rows, args.repeats, log)
        if "latency" in parts:
            log(f"2. latency, {latency_s:.0f} s at 1,000 rows/s")
            report["latency"] = part_latency(latency_s, 1.0, log)
        if "memory" in parts:
            log(f"3. memory under backpressure, {memory_s:.0f} s")
            report["memory"] = part_memory(memory_s, 5.0, log)
    finally:
        ray.shutdown()
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_executor.json").write_text(json.dumps(report, indent=2))
    if parts == {"throughput", "latency", "memory"}:
        text = markdown(report)
        (RESULTS / "ray_executor.md").write_text(text)
        print(text)
    log(f"done in {meta['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    # Run as the importable module, so that Ray workers find the classes and functions above
    # under benchmarks.ray_executor (not __main__).
    from benchmarks import ray_executor

    raise SystemExit(ray_executor.main())
