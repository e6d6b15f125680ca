"""Ray Compiled Graphs against ordinary actor calls for a source -> middle -> sink chain of Arrow batches.

The driver is the source. "normal" is plain actor calls: the driver calls ``mid.push.remote(batch)``
and ``mid`` itself calls ``sink.push.remote(batch)`` and waits for it. "compiled" is the same chain
built with ``ray.dag`` (InputNode -> mid -> sink) and ``experimental_compile()``, which moves the
batches over pre-allocated shared-memory channels instead of tasks and the object store.

Measured, for both: (1) per-hop latency at a low rate (10-row batches every 10 ms, 1,000 rows/s),
from ``time.time_ns()`` taken in each process (CLOCK_REALTIME is shared by the processes of one
machine; ``perf_counter`` is not); (2) throughput with 1,000- and 10,000-row detection-like batches
with up to ``--inflight`` batches in flight (``ray.wait`` window for normal calls,
``_max_inflight_executions`` for the compiled graph); (3) whether ``teardown()`` of each compiled
graph returns promptly and whether files are left in /dev/shm, ending with one compiled run of ~1 MB
(30,000-row) batches, larger than the graph's default 1 MB channel buffer. Every compiled run gets
fresh actors, killed afterwards. Run: ``python -m benchmarks.ray_compiled_graphs``; figures go to
benchmarks/results/ray_compiled_graphs.{json,md}.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ["RAY_AUTH_MODE"] = "disabled"

import numpy as np
import pyarrow as pa
import ray
from ray.dag import InputNode

RESULTS = Path(__file__).parent / "results"
DISTRICTS = ("songdo", "yeongjong", "cheongna", "guwol", "juan", "bupyeong", "gyeyang")
BASE_TS = 1_767_225_600_000
TEARDOWN_WARN_S = 10.0
SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("district", pa.string()),
        ("confidence", pa.float64()),
        ("x", pa.float64()),
        ("y", pa.float64()),
    ]
)


def make_batches(rows: int, count: int, seed: int = 1) -> list[pa.RecordBatch]:
    """``count`` detection-like batches of ``rows`` rows; batch i has ts[0] == BASE_TS + i, so the
    sink can show that it received the batch that was sent (and not a reused buffer)."""
    rng = np.random.default_rng(seed)
    names = np.array(DISTRICTS, dtype=object)
    out = []
    for i in range(count):
        ts = BASE_TS + i + np.arange(rows, dtype=np.int64) * 10
        out.append(
            pa.record_batch(
                [
                    pa.array(ts, pa.int64()),
                    pa.array(names[rng.integers(0, len(DISTRICTS), rows)], pa.string()),
                    pa.array(rng.uniform(0.3, 1.0, rows)),
                    pa.array(rng.uniform(0, 1920, rows)),
                    pa.array(rng.uniform(0, 1080, rows)),
                ],
                schema=SCHEMA,
            )
        )
    return out


# ---- the actors ---------------------------------------------------------------------------------
# A sink result is (seq, t_send, t_mid_recv, t_mid_send, t_sink_recv, rows, ts0), times in ns.


@ray.remote(num_cpus=0)
class Sink:
    def push(self, batch: pa.RecordBatch, meta: tuple[int, int, int, int]) -> tuple[int, ...]:
        recv = time.time_ns()
        return (*meta, recv, batch.num_rows, batch.column(0)[0].as_py())

    def cg_push(self, msg: tuple[pa.RecordBatch, tuple[int, int, int, int]]) -> tuple[int, ...]:
        recv = time.time_ns()
        batch, meta = msg
        return (*meta, recv, batch.num_rows, batch.column(0)[0].as_py())


@ray.remote(num_cpus=0)
class Mid:
    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def push(self, batch: pa.RecordBatch, seq: int, sent: int) -> tuple[int, ...]:
        recv = time.time_ns()
        return ray.get(self.sink.push.remote(batch, (seq, sent, recv, time.time_ns())))

    def cg_push(self, msg: tuple[pa.RecordBatch, int, int]) -> tuple[pa.RecordBatch, tuple[int, int, int, int]]:
        recv = time.time_ns()
        batch, seq, sent = msg
        return batch, (seq, sent, recv, time.time_ns())

    def ready(self) -> bool:
        return True


# ---- the two ways of driving the chain --------------------------------------------------------


class Chain:
    """Fresh actors plus a submit/get pair for one variant."""

    def __init__(self, variant: str, inflight: int) -> None:
        self.variant = variant
        self.sink = Sink.remote()  # type: ignore[attr-defined]
        self.mid = Mid.remote(self.sink)  # type: ignore[attr-defined]
        ray.get(self.mid.ready.remote())
        self.compiled: Any = None
        if variant == "compiled":
            with InputNode() as inp:
                dag = self.sink.cg_push.bind(self.mid.cg_push.bind(inp))
            self.compiled = dag.experimental_compile(_max_inflight_executions=inflight)

    def submit(self, batch: pa.RecordBatch, seq: int) -> Any:
        if self.compiled is not None:
            return self.compiled.execute((batch, seq, time.time_ns()))
        return self.mid.push.remote(batch, seq, time.time_ns())

    def close(self, report: dict[str, Any]) -> None:
        if self.compiled is not None:
            report["teardown"] = guarded(self.compiled.teardown, TEARDOWN_WARN_S + 5)
        for actor in (self.mid, self.sink):
            try:
                ray.kill(actor)
            except Exception as exc:
                report.setdefault("kill_errors", []).append(repr(exc))


def guarded(fn: Callable[[], Any], timeout: float) -> dict[str, Any]:
    """Run ``fn`` in a daemon thread; give up waiting after ``timeout`` seconds."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            fn()
        except Exception as exc:
            outcome["error"] = repr(exc)

    started = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    outcome["hung"] = thread.is_alive()
    outcome["over_10s"] = outcome["seconds"] > TEARDOWN_WARN_S
    return outcome


def shm_files() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


RAYLET_PID: list[int] = []  # this session's raylet, which creates the channels' named semaphores


def ours(names: set[str] | list[str]) -> list[str]:
    """The /dev/shm names created by this session's raylet (``sem.hdr<pid>-...``, ``sem.obj<pid>-...``);
    other Ray sessions on the machine create files there too."""
    if not RAYLET_PID:
        return sorted(names)
    prefixes = (f"sem.hdr{RAYLET_PID[0]}-", f"sem.obj{RAYLET_PID[0]}-")
    return sorted(n for n in names if n.startswith(prefixes))


def raylet_pid() -> list[int]:
    try:  # private API, good enough for a benchmark
        node: Any = ray._private.worker._global_node
        return [node.all_processes[ray._private.ray_constants.PROCESS_TYPE_RAYLET][0].process.pid]
    except Exception:
        return []


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def check(result: tuple[int, ...], batches: list[pa.RecordBatch]) -> bool:
    seq, rows, ts0 = result[0], result[5], result[6]
    expected = batches[seq % len(batches)]
    return rows == expected.num_rows and ts0 == BASE_TS + seq % len(batches)


# ---- the measurements -----------------------------------------------------------------------


def latency(chain: Chain, seconds: float, interval_s: float, batches: list[pa.RecordBatch]) -> dict[str, Any]:
    """One 10-row batch every ``interval_s``, each waited for before the next is due."""
    hop1, hop2, rtt, bad = [], [], [], 0
    for seq in range(20):  # warm-up, not recorded
        ray.get(chain.submit(batches[seq % len(batches)], seq))
    sent = 0
    started = time.monotonic()
    due = started
    while due < started + seconds:
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        seq = 20 + sent
        t0 = time.time_ns()
        result = ray.get(chain.submit(batches[seq % len(batches)], seq))
        rtt.append((time.time_ns() - t0) / 1e6)
        hop1.append((result[2] - result[1]) / 1e6)
        hop2.append((result[4] - result[3]) / 1e6)
        bad += not check(result, batches)
        sent += 1
        due += interval_s
    elapsed = time.monotonic() - started
    rows = sent * batches[0].num_rows

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50_ms": pct(values, 50), "p99_ms": pct(values, 99), "max_ms": max(values)}

    return {
        "batches": sent,
        "rows_per_s_achieved": rows / elapsed,
        "hop1_driver_to_mid": summary(hop1),
        "hop2_mid_to_sink": summary(hop2),
        "round_trip": summary(rtt),
        "bad_batches": bad,
    }


def throughput(chain: Chain, seconds: float, inflight: int, batches: list[pa.RecordBatch]) -> dict[str, Any]:
    """Keep up to ``inflight`` batches in flight for ``seconds``; count rows that reached the sink."""
    done, bad = 0, 0
    compiled = chain.compiled is not None
    pending: collections.deque[Any] = collections.deque()
    normal_pending: list[Any] = []

    def drain_one() -> None:
        nonlocal done, bad
        if compiled:
            result = ray.get(pending.popleft())
        else:
            ready, rest = ray.wait(normal_pending, num_returns=1)
            normal_pending[:] = rest
            result = ray.get(ready[0])
        done += 1
        bad += not check(result, batches)

    def in_flight() -> int:
        return len(pending) if compiled else len(normal_pending)

    def submit(seq: int) -> None:
        ref = chain.submit(batches[seq % len(batches)], seq)
        (pending.append if compiled else normal_pending.append)(ref)

    seq = 0
    for _ in range(2 * inflight):  # warm-up
        if in_flight() >= inflight:
            drain_one()
        submit(seq)
        seq += 1
    while in_flight():
        drain_one()
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        if in_flight() >= inflight:
            drain_one()
        submit(seq)
        seq += 1
    while in_flight():
        drain_one()
    elapsed = time.perf_counter() - started
    rows = done * batches[0].num_rows
    return {
        "batch_rows": batches[0].num_rows,
        "batch_bytes": batches[0].nbytes,
        "batches": done,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "batches_per_s": done / elapsed,
        "mb_per_s": done * batches[0].nbytes / elapsed / 1e6,
        "bad_batches": bad,
    }


def run_one(variant: str, name: str, inflight: int, body: Callable[[Chain], dict[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {"variant": variant, "measure": name}
    before = shm_files()
    chain = None
    try:
        chain = Chain(variant, inflight)
        report.update(body(chain))
    except Exception as exc:
        report["error"] = repr(exc)
    finally:
        if chain is not None:
            chain.close(report)
    time.sleep(0.5)
    after = shm_files()
    report["shm_before"] = len(before)
    report["shm_after"] = len(after)
    report["shm_leftover"] = sorted(after - before)
    report["shm_leftover_ours"] = len(ours(after - before))
    print(f"{variant:9s} {name:22s} {json.dumps({k: v for k, v in report.items() if k not in ('variant', 'measure')})}")
    sys.stdout.flush()
    return report


# ---- report -------------------------------------------------------------------------------------


def _get(runs: list[dict[str, Any]], variant: str, measure: str) -> dict[str, Any]:
    return next((r for r in runs if r["variant"] == variant and r["measure"] == measure), {})


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(meta: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    lines = [
        "# Ray Compiled Graphs vs ordinary actor calls (driver -> mid -> sink, pyarrow RecordBatch)",
        "",
        f"{meta['when']}, Python {meta['python']}, ray {meta['ray']}, pyarrow {meta['pyarrow']}, "
        f"{meta['cpus']} CPUs (shared, busy machine), load average before run {meta['loadavg']}, "
        f"in flight: {meta['inflight']}",
        "",
        "| measure | normal actor calls | compiled graph | compiled better by (x; < 1 = worse) |",
        "|---|---:|---:|---:|",
    ]
    lo_n, lo_c = _get(runs, "normal", "latency"), _get(runs, "compiled", "latency")
    for hop, label in (
        ("hop1_driver_to_mid", "hop driver->mid"),
        ("hop2_mid_to_sink", "hop mid->sink"),
        ("round_trip", "round trip"),
    ):
        for stat in ("p50_ms", "p99_ms", "max_ms"):
            a = lo_n.get(hop, {}).get(stat)
            b = lo_c.get(hop, {}).get(stat)
            ratio = f"{a / b:.2f}" if a and b else "n/a"
            lines.append(
                f"| {label} {stat.replace('_ms', '')} (ms, 10-row batches at 1,000 rows/s) | "
                f"{_fmt(a, '.3f')} | {_fmt(b, '.3f')} | {ratio} |"
            )
    for measure in ("throughput_1k", "throughput_10k", "throughput_30k"):
        a = _get(runs, "normal", measure).get("rows_per_s")
        b = _get(runs, "compiled", measure).get("rows_per_s")
        rows = (_get(runs, "compiled", measure) or _get(runs, "normal", measure)).get("batch_rows")
        size = (_get(runs, "compiled", measure) or _get(runs, "normal", measure)).get("batch_bytes")
        ratio = f"{b / a:.2f}" if a and b else "n/a"
        lines.append(
            f"| throughput rows/s, {_fmt(rows, ',')}-row batches ({_fmt(size, ',')} B) | "
            f"{_fmt(a, ',.0f')} | {_fmt(b, ',.0f')} | {ratio} |"
        )
    lines += [
        "",
        "| compiled run | teardown s | teardown hung (> 15 s) | /dev/shm files before -> after | new, from this raylet | error |",
        "|---|---:|---|---|---:|---|",
    ]
    for r in runs:
        if r["variant"] != "compiled":
            continue
        td = r.get("teardown", {})
        lines.append(
            f"| {r['measure']} | {_fmt(td.get('seconds'), '.2f')} | {td.get('hung')} | "
            f"{r['shm_before']} -> {r['shm_after']} | {r['shm_leftover_ours']} | {r.get('error', td.get('error', ''))} |"
        )
    lines += [
        "",
        f"After ray.shutdown ({meta['ray_shutdown']['seconds']} s, hung: {meta['ray_shutdown']['hung']}), "
        f"{meta['shm_left_after_shutdown_ours']} /dev/shm files created by this session's raylet "
        f"(pid {meta['raylet_pid']}) were still there. Hops are timed with time.time_ns() in each process; "
        "in the normal variant mid waits for sink, so hop mid->sink carries one batch at a time.",
        "",
        "Conclusions:",
        "",
    ] + [f"- {c}" for c in conclusions(runs, meta)]
    return "\n".join(lines) + "\n"


def conclusions(runs: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    out = []
    lo_n, lo_c = _get(runs, "normal", "latency"), _get(runs, "compiled", "latency")
    if lo_n.get("hop2_mid_to_sink") and lo_c.get("hop2_mid_to_sink"):
        n1, c1 = lo_n["hop1_driver_to_mid"]["p50_ms"], lo_c["hop1_driver_to_mid"]["p50_ms"]
        n2, c2 = lo_n["hop2_mid_to_sink"]["p50_ms"], lo_c["hop2_mid_to_sink"]["p50_ms"]
        n9, c9 = lo_n["hop2_mid_to_sink"]["p99_ms"], lo_c["hop2_mid_to_sink"]["p99_ms"]
        out.append(
            f"Per-hop p50 at 1,000 rows/s: driver->mid {n1:.3f} ms normal vs {c1:.3f} ms compiled, "
            f"mid->sink {n2:.3f} vs {c2:.3f} ms (p99 {n9:.3f} vs {c9:.3f} ms)."
        )
    parts = []
    for measure, label in (("throughput_1k", "1,000-row"), ("throughput_10k", "10,000-row"), ("throughput_30k", "30,000-row")):
        a = _get(runs, "normal", measure).get("rows_per_s")
        b = _get(runs, "compiled", measure).get("rows_per_s")
        if a and b:
            parts.append(f"{label} batches {a:,.0f} vs {b:,.0f} rows/s ({b / a:.2f}x)")
    if parts:
        out.append("Throughput normal vs compiled: " + "; ".join(parts) + ".")
    compiled = [r for r in runs if r["variant"] == "compiled"]
    hung = [r["measure"] for r in compiled if r.get("teardown", {}).get("hung")]
    slow = [r["measure"] for r in compiled if r.get("teardown", {}).get("over_10s")]
    leftover = [f"{r['measure']} ({r['shm_leftover_ours']})" for r in compiled if r["shm_leftover_ours"]]
    errors = [f"{r['measure']}: {r['error']}" for r in runs if r.get("error")]
    out.append(
        f"Compiled teardown: hung in {hung or 'no run'}, over 10 s in {slow or 'no run'}, "
        f"times {[r.get('teardown', {}).get('seconds') for r in compiled]} s; "
        f"new /dev/shm files left after teardown + ray.kill in {leftover or 'no run'}, "
        f"{meta['shm_left_after_shutdown_ours']} still there after ray.shutdown" + (f"; errors: {errors}" if errors else "") + "."
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--throughput-seconds", type=float, default=4.0)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--big-rows", type=int, default=30_000, help="rows per batch of the last (~1 MB) compiled run")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="rewrite the .md from the saved .json and exit")
    args = parser.parse_args(argv)
    if args.report_only:  # rebuild the Markdown from the saved JSON, without running anything
        saved = json.loads((RESULTS / "ray_compiled_graphs.json").read_text())
        (RESULTS / "ray_compiled_graphs.md").write_text(markdown(saved["meta"], saved["results"]))
        return 0

    shm_start = shm_files()
    loadavg = os.getloadavg()
    ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    RAYLET_PID[:] = raylet_pid()
    small = make_batches(10, 16)
    k1 = make_batches(1_000, 16)
    k10 = make_batches(10_000, 16)
    runs: list[dict[str, Any]] = []
    for variant in ("normal", "compiled"):
        body = partial(latency, seconds=args.latency_seconds, interval_s=0.010, batches=small)
        runs.append(run_one(variant, "latency", args.inflight, body))
    for name, batches in (("throughput_1k", k1), ("throughput_10k", k10)):
        for variant in ("normal", "compiled"):
            body = partial(throughput, seconds=args.throughput_seconds, inflight=args.inflight, batches=batches)
            runs.append(run_one(variant, name, args.inflight, body))
    if not args.skip_big:
        big = make_batches(args.big_rows, 4)
        for variant in ("normal", "compiled"):  # the compiled one last: it may hang
            body = partial(throughput, seconds=3.0, inflight=args.inflight, batches=big)
            runs.append(run_one(variant, "throughput_30k", args.inflight, body))

    shutdown = guarded(ray.shutdown, 30.0)
    time.sleep(0.5)
    meta = {
        "python": platform.python_version(),
        "ray": ray.__version__,
        "pyarrow": pa.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in loadavg],
        "inflight": args.inflight,
        "clock": "time.time_ns (CLOCK_REALTIME, shared across processes)",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "ray_shutdown": shutdown,
        "shm_files_start": len(shm_start),
        "shm_files_end": len(shm_files()),
        "raylet_pid": RAYLET_PID[0] if RAYLET_PID else None,
        "shm_leftover_whole_run": sorted(shm_files() - shm_start),
        "shm_left_after_shutdown_ours": len(ours(shm_files())),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_compiled_graphs.json").write_text(json.dumps({"meta": meta, "results": runs}, indent=2))
    (RESULTS / "ray_compiled_graphs.md").write_text(markdown(meta, runs))
    print(
        f"ray.shutdown: {shutdown}; /dev/shm files {meta['shm_files_start']} -> {meta['shm_files_end']}, "
        f"{meta['shm_left_after_shutdown_ours']} of them from this session's raylet"
    )
    sys.stdout.flush()
    if shutdown["hung"] or any(r.get("teardown", {}).get("hung") for r in runs):
        os._exit(0)  # a stuck teardown/shutdown thread would otherwise keep the interpreter alive
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
