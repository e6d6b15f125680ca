"""citystream against Bytewax and PyFlink: the same workloads on the same files, each engine run in
its own process per workload, timed from outside.

1. The peers' virtual environments (benchmarks/peers/.venvs/<peer>, git-ignored) are created when
   missing and installed from requirements-<peer>.txt (every package pinned with ``==``).
2. The data is generated once per run from a seed (benchmarks/peers/.data/, kept while the spec is
   the same) as Arrow IPC files (citystream, Bytewax) and CSV copies (PyFlink).
3. Every (engine, workload) runs in a subprocess (benchmarks/peers/runners/). The runner samples the
   resident memory of the whole process tree (PyFlink's JVM included) from /proc every 50 ms; the
   child reports the wall-clock times of its job's start, first output row and end.
4. Each output is reduced to a canonical table and an order-independent checksum (row count and
   a sum of row hashes), compared across engines.

Writes benchmarks/RESULTS.md and benchmarks/results/peers.json. Run: ``python -m benchmarks.peers.run``
(``make peers``); ``--quick`` for a small smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.peers.workloads import WORKLOADS, DataFiles, DataSpec, canonical, checksum, events_of, read_output, write_data

HERE = Path(__file__).parent
REPO = HERE.parents[1]
VENVS = HERE / ".venvs"
DATA = HERE / ".data"
RUNNERS = HERE / "runners"
RESULTS_MD = HERE.parent / "RESULTS.md"
RESULTS_JSON = HERE.parent / "results" / "peers.json"
PEERS = ("bytewax", "pyflink")
ENGINES = ("citystream-inline", "citystream-ray", "bytewax", "bytewax-arrow", "pyflink")
# Engines that run only some workloads: Bytewax carrying whole Arrow batches has no windows.
ONLY = {"bytewax-arrow": ("q1", "q2")}
REFERENCE = "citystream-inline"
GOAL = 5.0
FULL = DataSpec(nexmark_events=10_000_000, detections=3_000_000)
QUICK = DataSpec(nexmark_events=400_000, detections=100_000)
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# Peer environments


def peer_python(peer: str) -> Path:
    return VENVS / peer / "bin" / "python"


def ensure_venv(peer: str) -> Path:
    """The peer's venv, created and installed from its pinned requirements when missing."""
    python = peer_python(peer)
    stamp = VENVS / peer / ".installed"
    requirements = HERE / f"requirements-{peer}.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == requirements.read_text():
        return python
    print(f"setting up {VENVS / peer} from {requirements.name}", flush=True)
    base = shutil.which("python3") or sys.executable
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(VENVS / peer)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)], check=True
    )
    stamp.write_text(requirements.read_text())
    return python


# ---------------------------------------------------------------------------------------------
# Memory of a process tree


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_rss(root: int) -> tuple[int, int]:
    """Resident bytes of ``root`` and all its descendants, read from /proc: all of them, and the
    anonymous ones (resident less file-backed and shared pages: memory-mapped input files, the
    libraries and Ray's shared-memory object store are not in the second figure)."""
    children = _children_of()
    total = anonymous = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as statm:
                fields = statm.read().split()
            total += int(fields[1]) * PAGE
            anonymous += (int(fields[1]) - int(fields[2])) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, []))
    return total, anonymous


class TreeSampler(threading.Thread):
    """Samples the resident memory of a process tree every ``interval`` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = self.peak_anonymous = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            total, anonymous = tree_rss(self.pid)
            self.peak, self.peak_anonymous = max(self.peak, total), max(self.peak_anonymous, anonymous)
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ---------------------------------------------------------------------------------------------
# One run


@dataclass
class Run:
    engine: str
    workload: str
    events: int
    total_s: float | None = None  # process start to the job's end
    run_s: float | None = None  # the job's start (after imports, engine start-up) to its end
    startup_s: float | None = None
    first_result_s: float | None = None  # job start to the first output row
    peak_rss_mb: float | None = None
    peak_anonymous_mb: float | None = None  # without file-backed and shared pages
    rows: int | None = None
    digest: str | None = None
    late_rows: int | None = None
    same: bool | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate_total(self) -> float | None:
        return self.events / self.total_s if self.total_s else None

    @property
    def rate_run(self) -> float | None:
        return self.events / self.run_s if self.run_s else None


def command(engine: str, workload: str, data: Path, out: Path, report: Path) -> list[str]:
    common = ["--workload", workload, "--data", str(data), "--out", str(out), "--report", str(report)]
    if engine.startswith("citystream"):
        executor = engine.split("-", 1)[1]
        return [sys.executable, "-m", "benchmarks.peers.runners.citystream_job", *common, "--executor", executor]
    if engine == "bytewax-arrow":
        return [str(peer_python("bytewax")), str(RUNNERS / "bytewax_job.py"), *common, "--arrow"]
    return [str(peer_python(engine)), str(RUNNERS / f"{engine}_job.py"), *common]


def run_one(engine: str, workload: str, files: DataFiles, scratch: Path, timeout_s: float) -> Run:
    """Runs ``workload`` on ``engine`` in a subprocess; measures it and checksums its output."""
    rows = files.manifest()["rows"]
    result = Run(engine, workload, events_of(workload, rows))
    out = scratch / f"{engine}-{workload}" if engine == "pyflink" else scratch / f"{engine}-{workload}.arrow"
    report_path = scratch / f"{engine}-{workload}.json"
    log_path = scratch / f"{engine}-{workload}.log"
    for stale in (out, report_path):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        spawned = time.time()
        process = subprocess.Popen(
            command(engine, workload, files.root, out, report_path), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        sampler = TreeSampler(process.pid)
        sampler.start()
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = -9
        finally:
            sampler.stop()
    result.peak_rss_mb = round(sampler.peak / 2**20, 1)
    result.peak_anonymous_mb = round(sampler.peak_anonymous / 2**20, 1)
    if code != 0 or not report_path.exists():
        tail = log_path.read_text().strip().splitlines()[-3:]
        result.error = f"exit code {code}: " + " | ".join(tail)
        return result
    report = json.loads(report_path.read_text())
    result.total_s = report["job_end"] - spawned
    result.run_s = report["job_end"] - report["job_start"]
    result.startup_s = report["job_start"] - spawned
    if report.get("first_result") is not None:
        result.first_result_s = report["first_result"] - report["job_start"]
    result.late_rows = report.get("late_rows")
    result.extra = {k: v for k, v in report.items() if k in ("version", "python", "rows_out")}
    try:
        summary = checksum(canonical(workload, read_output(out, workload)))
        result.rows, result.digest = summary["rows"], summary["digest"]
    except (OSError, KeyError, pa.ArrowException) as exc:
        result.error = f"output not readable: {type(exc).__name__}: {exc}"
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    return result


# ---------------------------------------------------------------------------------------------
# Report


def _first_line(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError):
        memory_kb = 0
    import ray

    versions = {
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "ray": ray.__version__,
        "citystream commit": _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "java": _first_line(["java", "-version"]),
    }
    for peer in PEERS:
        pins = (HERE / f"requirements-{peer}.txt").read_text().splitlines()
        versions.update(
            {
                line.split("==")[0]: line.split("==")[1]
                for line in pins
                if line.split("==")[0] in ("bytewax", "apache-flink", "pyarrow")
                and "==" in line
                and line.split("==")[0] != "pyarrow"
            }
        )
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "kernel": platform.release(),
        "versions": versions,
    }


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def _fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def ratios(runs: list[Run]) -> dict[str, dict[str, float | None]]:
    """citystream-inline's events/s over each other engine's, end to end and excluding start-up."""
    reference = next((r for r in runs if r.engine == REFERENCE), None)
    found: dict[str, dict[str, float | None]] = {}
    for run in runs:
        if reference is None or run.engine == REFERENCE:
            continue
        total = reference.rate_total / run.rate_total if reference.rate_total and run.rate_total else None
        processing = reference.rate_run / run.rate_run if reference.rate_run and run.rate_run else None
        found[run.engine] = {"total": total, "run": processing}
    return found


FEEDING = """\
- **citystream** (inline: `engine.InlineExecutor`, one process; Ray: `engine.RayExecutor` on a local Ray
  started in the child, one task per operator): a `Source` that memory-maps the Arrow IPC file and
  returns its record batches (10,000 rows each, as written); results go to an Arrow IPC stream file.
- **Bytewax** (one worker, `bytewax.testing.run_main`): a `FixedPartitionedSource` with one
  partition that reads the same Arrow IPC file batch by batch with pyarrow and hands each batch
  (10,000 rows) to Bytewax as one list of Python tuples of the columns the workload uses (timestamps
  as UTC datetimes where a clock needs them); q1/q2 with `flat_map_batch`, windows with
  `count_window` / `fold_window` and an `EventClock` (no wait, not advanced by the system clock,
  the documented set-up for a replay), the as-of join with `stateful_flat_map` keyed by district.
  For the fusion job the source merges detections and readings in event-time order (a reading
  before a detection of the same millisecond) when it opens: Bytewax has no event-time alignment
  of two inputs. Results go to an Arrow IPC stream file (one batch per Bytewax output batch).
- **bytewax-arrow** (q1 and q2 only): the same Bytewax source, but each item is a whole Arrow record
  batch, transformed in `op.map` with pyarrow.compute and written as is: Bytewax as the vessel of
  columnar code, the fastest way to run a stateless query on it. Its windows and joins work on
  Python items, so the stateful workloads have no such variant.
- **PyFlink** (Table API / SQL, local mini-cluster in streaming mode, parallelism 1): its pip package
  bundles the CSV and JSON formats but neither Parquet, ORC nor Arrow, so it reads **CSV copies** of
  the same data with the filesystem connector (times as epoch-ms BIGINT turned into a
  TIMESTAMP_LTZ(3) rowtime, watermark 1 ms behind the latest time); **CSV parsing is part of its
  figures**. Windows with the TUMBLE / HOP table-valued functions; the fusion job is an event-time
  temporal join (`FOR SYSTEM_TIME AS OF d.ts`) against a versioned view of the readings (the
  latest row per district by deduplication), then TUMBLE. Results go to CSV files (filesystem
  sink); the time to first result is when output bytes first reach the sink's folder (polled every
  10 ms; the writer buffers, so it is an upper bound). The JVM's start is in the start-up.
"""

SEMANTICS = """\
- Every engine reads all rows of the same data; q1 keeps auction, bidder, price in euros, dateTime
  and extra (Flink's q1 columns); q2 keeps auction and price. Flink computes `0.908 * price` as a
  DECIMAL, the others as float64: compared as round(price x 1000).
- Windows are aligned to the epoch; a window's rows are compared as (key, start, end, count).
  citystream and Flink emit a window when the watermark passes its end, Bytewax when a later item
  of the same key arrives or at the end of input (its watermark is per key); with in-order input
  and no lateness allowed, the sets of windows are the same.
- As-of join: the latest reading of the detection's district at or before the detection's time
  (inclusive), no tolerance, left outer. The data has one station per district so that no two
  readings of a district share a time (engines break such ties differently). The fusion output is
  per camera and 10 s window: the count of detections and the highest PM10 they were joined with.
- Data is in event-time order (Nexmark's generator with out-of-order groups of 1, detections with no
  disorder), so no engine drops a row as late; the late counts are reported to check it.
"""


BUSY_LOAD = 2.5
NOTES = (
    "- Each figure is one run. The reference for *same* is citystream-inline's output.",
    "- Outputs are written by every engine (Arrow IPC for citystream and Bytewax, CSV for PyFlink) and the",
    "  writing is in each figure: q1 writes every bid back (about 1.6 GB of Arrow IPC at the full size).",
    "- citystream-ray: start-up is the interpreter, imports and `ray.init`; the run includes creating the",
    "  actors (one per task) and waiting for the job's end (`ray.shutdown` after it is not counted).",
    "- q1 and q2 are stateless: citystream and bytewax-arrow run the same pyarrow kernels on the same",
    "  batches and write the same IPC bytes, so neither engine's overhead can make a 5x difference there.",
    "- PyFlink: start-up is the interpreter, the JVM, the table environment, planning and the local",
    "  cluster's start (until `execute_sql` returns with the job submitted); the run includes the tasks'",
    "  deployment. Parallelism 1, as citystream-inline and Bytewax run on one core.",
    "- Bytewax: the run includes its source turning Arrow batches into Python tuples (and, for the",
    "  fusion job, merging the two inputs in time order).",
)


def write_report(meta: dict[str, Any], results: dict[str, list[Run]]) -> str:
    box, spec, rows = meta["machine"], meta["spec"], meta["rows"]
    lines = [
        "# citystream and peer stream processors, side by side",
        "",
        f"Generated by `make peers` (`python -m benchmarks.peers.run{' --quick' if meta['quick'] else ''}`) on {meta['date']}.",
        "One run per engine and workload, each in its own process; figures are single measurements on a",
        "shared 2-core machine: read them as orders of magnitude.",
        "",
        f"- Machine: {box['cpus']} cores ({box['cpu']}), {box['memory_gib']} GiB, Linux {box['kernel']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["machine"]["versions"].items()),
        f"- Load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in meta['load_start'])}; "
        f"at end: {', '.join(f'{x:.2f}' for x in meta['load_end'])}",
        f"- Data (seed {spec['seed']}): {rows['bids']:,} bids (from {spec['nexmark_events']:,} Nexmark events), "
        f"{rows['detections']:,} detections and {rows['weather']:,} weather readings "
        "(one station per district, every second)",
        "",
        "Columns: **events/s** = events read / (process start to the job's end); **excl. start-up** = events",
        "read / (the job's start to its end), without interpreter start, imports, JVM or Ray start-up and",
        "data-independent set-up; **first result** = job start to the first output row; **peak RSS** = the",
        "whole process tree, sampled every 50 ms (in brackets: its anonymous memory, without file-backed",
        "and shared pages such as the memory-mapped input files); **same** = the canonical output (row count and",
        "order-independent digest) equals citystream-inline's; **ratio** = citystream-inline's events/s",
        "over that engine's (end to end / excluding start-up).",
        "",
    ]
    verdicts: list[str] = []
    for workload in WORKLOADS:
        runs = results.get(workload, [])
        if not runs:
            continue
        found = ratios(runs)
        lines += [
            f"## {workload}",
            "",
            "| engine | events | seconds | events/s | excl. start-up | first result | peak RSS | rows | same | ratio |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            ratio = found.get(run.engine)
            ratio_text = "-" if ratio is None else f"{_fmt(ratio['total'], 1, 'x')} / {_fmt(ratio['run'], 1, 'x')}"
            same = "error" if run.error else ("yes" if run.same else "no" if run.same is not None else "-")
            cells = [
                run.engine,
                f"{run.events:,}",
                f"{_fmt(run.total_s)} (run {_fmt(run.run_s)})",
                _fmt_rate(run.rate_total),
                _fmt_rate(run.rate_run),
                _fmt(run.first_result_s, 3, " s"),
                f"{_fmt(run.peak_rss_mb, 0, ' MB')} ({_fmt(run.peak_anonymous_mb, 0)})",
                "-" if run.rows is None else str(run.rows),
                same,
                ratio_text,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        errors = [f"- {run.engine}: {run.error}" for run in runs if run.error]
        differing = [
            f"- {run.engine}: {run.rows} rows, digest {run.digest} (reference {meta['reference'].get(workload)})"
            for run in runs
            if run.same is False
        ]
        lines += ["", *errors, *differing] if errors or differing else []
        peers = {e: r for e, r in found.items() if e.split("-")[0] in PEERS}
        if peers:
            for measure, label in (("total", "end to end"), ("run", "excluding start-up")):
                values: dict[str, float] = {e: v for e, r in peers.items() if (v := r[measure]) is not None}
                if values:
                    fastest = min(values, key=values.__getitem__)  # the smallest ratio: the fastest peer
                    lowest = values[fastest]
                    verdicts.append(f"| {workload} | {label} | {fastest} | {lowest:.1f}x | {'yes' if lowest >= GOAL else 'NO'} |")
        lines.append("")
    goal = [
        "## The goal: citystream (inline) at least 5x the throughput of the fastest peer on every workload",
        "",
        "| workload | measure | fastest peer | citystream's ratio to it | ≥ 5x |",
        "|---|---|---|---|---|",
        *verdicts,
        "",
    ]
    notes = meta.get("notes") or []
    body = lines + goal + ["## How each engine was fed", "", FEEDING, "## Differences of semantics", "", SEMANTICS]
    if notes:
        body += ["## Notes", "", *notes, ""]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data: a smoke run of the benchmark")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated workloads")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated engines")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take")
    parser.add_argument("--markdown", type=Path, default=RESULTS_MD)
    parser.add_argument("--json", type=Path, default=RESULTS_JSON)
    args = parser.parse_args(argv)
    workloads = [w for w in args.workloads.split(",") if w]
    engines = [e for e in args.engines.split(",") if e]
    for name, chosen, allowed in (("workload", workloads, WORKLOADS), ("engine", engines, ENGINES)):
        unknown = sorted(set(chosen) - set(allowed))
        if unknown:
            parser.error(f"unknown {name}(s) {unknown}; choose among {', '.join(allowed)}")
    load_start = os.getloadavg()
    for peer in PEERS:
        if any(engine.split("-")[0] == peer for engine in engines):
            ensure_venv(peer)
    base = QUICK if args.quick else FULL
    spec = DataSpec(base.nexmark_events, base.detections, seed=args.seed)
    began = time.time()
    files = write_data(spec, DATA / ("quick" if args.quick else "full"))
    rows = files.manifest()["rows"]
    print(f"data ready in {time.time() - began:.1f} s: {rows}", flush=True)
    scratch = DATA / "out"
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Run]] = {}
    reference: dict[str, str | None] = {}
    for workload in workloads:
        for engine in engines:
            if workload not in ONLY.get(engine, WORKLOADS):
                continue
            run = run_one(engine, workload, files, scratch, args.timeout)
            results.setdefault(workload, []).append(run)
            print(
                f"{workload:<9} {engine:<18} total {_fmt(run.total_s)} s, run {_fmt(run.run_s)} s, "
                f"{_fmt_rate(run.rate_total)} ev/s "
                f"({_fmt_rate(run.rate_run)} excl. start-up), rss {_fmt(run.peak_rss_mb, 0)} MB, rows {run.rows} {run.digest}"
                + (f" ERROR {run.error}" if run.error else ""),
                flush=True,
            )
        ref = next((r for r in results[workload] if r.engine == REFERENCE and r.digest), None)
        reference[workload] = f"{ref.rows} rows, {ref.digest}" if ref else None
        for run in results[workload]:
            if ref is not None and run.digest is not None:
                run.same = (run.rows, run.digest) == (ref.rows, ref.digest)
    load_end = os.getloadavg()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
        "machine": machine(),
        "load_start": load_start,
        "load_end": load_end,
        "spec": asdict(spec),
        "rows": rows,
        "reference": reference,
        "notes": list(NOTES),
    }
    if max(load_start[0], load_end[0]) > BUSY_LOAD:
        meta["notes"].insert(
            0,
            f"- The machine was busy (1-minute load average above {BUSY_LOAD} on 2 cores): figures are lower than quiet ones.",
        )
    args.markdown.write_text(write_report(meta, results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **meta,
        "goal": GOAL,
        "results": {
            w: [{**asdict(r), "events_per_s": r.rate_total, "events_per_s_excl_startup": r.rate_run} for r in runs]
            for w, runs in results.items()
        },
        "ratios": {w: ratios(runs) for w, runs in results.items()},
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.markdown} and {args.json}")


if __name__ == "__main__":
    main()
