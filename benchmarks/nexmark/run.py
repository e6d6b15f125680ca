"""Runs the Nexmark queries (benchmarks/nexmark/queries/*.sql) on the generator and compares their
throughput per core with Flink's published figures.

Each query is compiled with the ``nexmark`` connector, then run to the end of its bounded input;
the time of the run is measured without the compilation. Events/s is the number of events the
query's tables hold (the rows generated of the kinds it reads) divided by that time. On the
inline executor (one process, one core) that is the per-core figure. A baseline row gives the
speed of the generator alone, polled and counted without the engine. Figures go to
benchmarks/results/nexmark.{json,md}.

Run: ``python -m benchmarks.nexmark.run [--events N] [--queries q0,q1] [--executor inline|ray]
[--parallelism P] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from benchmarks.nexmark.connector import nexmark_connectors, sized_for_kind
from benchmarks.nexmark.generator import KINDS, NexmarkConfig, NexmarkKind, NexmarkSource, generate_block
from engine import InlineExecutor, build_plan
from engine.errors import CitystreamError
from engine.executor import Executor
from operators.sql import SqlJob, compile_sql

logger = logging.getLogger(__name__)

QUERY_DIR = Path(__file__).parent / "queries"
RESULTS = Path(__file__).parents[1] / "results"
QUERIES = ("q0", "q1", "q2", "q3", "q5", "q7", "q8", "q11")
Sink = Literal["blackhole", "collect"]

# Events per query by default, so that each runs for roughly 3-20 s on one core (measured on a
# busy 2-core machine).
DEFAULT_EVENTS = {
    "q0": 100_000_000,
    "q1": 100_000_000,
    "q2": 100_000_000,
    "q3": 100_000_000,
    "q5": 10_000_000,
    "q7": 10_000_000,
    "q8": 100_000_000,
    "q11": 30_000_000,
}
BASELINE_EVENTS = 100_000_000

# Flink's throughput per core, events/s: github.com/nexmark/nexmark README, "Benchmark Results"
# (Flink 1.13, 8 TaskManagers of 1 slot, parallelism 8, 100 million events). Flink counts all
# 100 million events (of every kind) for every query: its 'Throughput/Cores' is 100 M / (cores
# x seconds), cores measured by a CPU collector on the workers.
FLINK_PER_CORE = {
    "q0": 155_020,
    "q1": 157_940,
    "q2": 175_210,
    "q3": 152_120,
    "q5": 22_140,
    "q7": 12_330,
    "q8": 146_140,
    "q11": 39_700,
}
GOAL = 10.0  # per-core events/s as a multiple of Flink's

_BLACKHOLE = re.compile(r"('connector'\s*=\s*)'blackhole'", re.IGNORECASE)


def query_text(query: str, sink: Sink = "blackhole") -> str:
    """The SQL of a query; with ``sink="collect"`` its sink keeps the rows (for tests)."""
    path = QUERY_DIR / f"{query}.sql"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in QUERY_DIR.glob("*.sql")))
        raise CitystreamError(f"no Nexmark query '{query}'; queries: {known}")
    text = path.read_text()
    if sink == "collect":
        text, replaced = _BLACKHOLE.subn(r"\1'collect'", text)
        if not replaced:
            raise CitystreamError(f"query '{query}' has no blackhole sink to turn into a collect sink")
    return text


def compile_query(query: str, config: NexmarkConfig, sink: Sink = "blackhole", parallelism: int = 1) -> SqlJob:
    """Compiles a Nexmark query over the generator with ``config``.

    Example:
        >>> job = compile_query("q2", NexmarkConfig(events=1000), sink="collect")
        >>> job.run().table().column_names
        ['auction', 'price']
    """
    return compile_sql(
        query_text(query, sink),
        connectors=nexmark_connectors(config),
        parallelism=parallelism,
        name=f"nexmark_{query}",
        path=str(QUERY_DIR / f"{query}.sql"),
    )


def kind_rows(config: NexmarkConfig, kind: NexmarkKind) -> int:
    """Rows of ``kind`` among the ``config.events`` events (ids from ``first_event_id``).

    Example:
        >>> kind_rows(NexmarkConfig(events=500), "person"), kind_rows(NexmarkConfig(events=500), "bid")
        (10, 460)
    """
    if config.events is None:
        raise CitystreamError("an unbounded stream has no number of rows")
    low = {"person": 0, "auction": config.person_proportion, "bid": config.person_proportion + config.auction_proportion}
    width = {"person": config.person_proportion, "auction": config.auction_proportion, "bid": config.bid_proportion}
    start, count = low[kind], width[kind]
    cycle = config.total_proportion

    def below(x: int) -> int:  # ids of the kind in [0, x)
        return x // cycle * count + min(max(x % cycle - start, 0), count)

    return below(config.first_event_id + config.events) - below(config.first_event_id)


def job_sources(job: SqlJob) -> list[tuple[NexmarkKind, NexmarkConfig]]:
    """The kind and configuration of each Nexmark table the job reads."""
    found = []
    for node in job.flow.nodes:
        source = node.source
        kind, config = getattr(source, "kind", None), getattr(source, "config", None)
        if kind in KINDS and isinstance(config, NexmarkConfig):
            found.append((kind, config))
    return found


@dataclass
class Measurement:
    """One query's runs: the events its tables hold, the seconds of each run, what came out."""

    name: str
    kinds: list[str]
    events: int  # rows generated of the kinds the query reads
    stream_events: int  # all events of the stream (Flink's count)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    output_rows: int | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    cores: int = 1
    error: str | None = None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def report(self, flink: int | None) -> dict[str, Any]:
        seconds = self.median_s
        rate = self.events / seconds if seconds else None
        per_core = rate / self.cores if rate is not None else None
        stream_per_core = self.stream_events / seconds / self.cores if seconds else None
        ratio = per_core / flink if per_core is not None and flink else None
        return {
            "query": self.name,
            "tables": self.kinds,
            "events": self.events,
            "stream_events": self.stream_events,
            "seconds": seconds,
            "runs_s": self.seconds,
            "cpu_s": self.cpu_seconds,
            "cores": self.cores,
            "events_per_s": rate,
            "events_per_s_per_core": per_core,
            "stream_events_per_s_per_core": stream_per_core,
            "flink_events_per_s_per_core": flink,
            "ratio_to_flink": ratio,
            "goal_met": None if ratio is None else ratio >= GOAL,
            "output_rows": self.output_rows,
            "dropped_rows": self.dropped,
            "error": self.error,
        }


def measure_query(query: str, config: NexmarkConfig, executor: Executor, parallelism: int, repeats: int) -> Measurement:
    """Compiles and runs a query ``repeats`` times (compiled anew each time: sources are consumed)."""
    measurement = Measurement(query, [], 0, config.events or 0)
    generate_block(config, config.first_event_id, 1)  # the string pools, built once per configuration
    for _ in range(repeats):
        try:
            job = compile_query(query, config, parallelism=parallelism)
        except Exception as exc:  # a query that fails to compile is a result too: the others still run
            measurement.error = f"compile: {type(exc).__name__}: {exc}"
            return measurement
        sources = job_sources(job)
        measurement.kinds = [kind for kind, _ in sources]
        measurement.events = sum(kind_rows(c, kind) for kind, c in sources)
        if not isinstance(executor, InlineExecutor):
            tasks = sum(vertex.parallelism for vertex in build_plan(job.flow).vertices)
            measurement.cores = min(tasks, os.cpu_count() or 1)
        began, cpu_began = time.perf_counter(), time.process_time()
        try:
            result = job.run(executor)
        except Exception as exc:
            measurement.error = f"run: {type(exc).__name__}: {exc}"
            return measurement
        measurement.seconds.append(time.perf_counter() - began)
        measurement.cpu_seconds.append(time.process_time() - cpu_began)
        outputs = result.result.outputs
        measurement.output_rows = sum(part["rows"] for name in job.outputs for part in outputs.get(name, []))
        measurement.dropped = result.counts()
    return measurement


def measure_generator(kinds: tuple[NexmarkKind, ...], config: NexmarkConfig, repeats: int) -> Measurement:
    """The generator alone: every batch of these kinds polled and its rows counted, no engine."""
    name = "generator only: " + " + ".join(kinds)
    measurement = Measurement(name, list(kinds), sum(kind_rows(config, kind) for kind in kinds), config.events or 0)
    generate_block(config, config.first_event_id, 1)
    for _ in range(repeats):
        rows = 0
        began, cpu_began = time.perf_counter(), time.process_time()
        for kind in kinds:
            source = NexmarkSource(kind, sized_for_kind(config, kind))  # as the queries' tables read it
            source.open(0, 1)
            while isinstance(batch := source.poll(), pa.RecordBatch):
                rows += batch.num_rows
        measurement.seconds.append(time.perf_counter() - began)
        measurement.cpu_seconds.append(time.process_time() - cpu_began)
        measurement.output_rows = rows
    return measurement


def _number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def write_results(report: dict[str, Any], path_stem: Path) -> None:
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    path_stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    meta = report["meta"]
    lines = [
        f"# Nexmark queries ({meta['executor']} executor, parallelism {meta['parallelism']})",
        "",
        f"{meta['when']}, Python {meta['python']}, pyarrow {meta['pyarrow']}, {meta['cpus']} cores; "
        f"load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}; "
        f"median of {meta['repeats']} run(s).",
        "",
        f"Command: `{meta['command']}`",
        "",
        "| query | tables | events | seconds | events/s | events/s per core | per core, Flink's count "
        "| Flink per core | ratio to Flink | goal 10x | output rows |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in report["results"]:
        if row["error"]:
            flink = _number(row["flink_events_per_s_per_core"])
            reason = row["error"].splitlines()[0].replace("|", "\\|")
            lines.append(f"| {row['query']} | {', '.join(row['tables'])} | | | | | | {flink} | | failed | {reason} |")
            continue
        ratio = row["ratio_to_flink"]
        goal = "" if row["goal_met"] is None else ("met" if row["goal_met"] else "not met")
        lines.append(
            f"| {row['query']} | {', '.join(row['tables'])} | {row['events']:,} | {row['seconds']:.2f} "
            f"| {_number(row['events_per_s'])} | {_number(row['events_per_s_per_core'])} "
            f"| {_number(row['stream_events_per_s_per_core'])} | {_number(row['flink_events_per_s_per_core'])} "
            f"| {'' if ratio is None else f'{ratio:,.1f}'} | {goal} | {_number(row['output_rows'])} |"
        )
    lines += [
        "",
        "How to read it:",
        "",
        "- **events**: the rows generated of the kinds the query reads (46 of 50 events are bids, 3 auctions,"
        " 1 a person); **seconds**: wall time of the run, from the first poll of the sources to the end of the"
        " job, without compiling the SQL; **events/s** = events / seconds.",
        "- **per core**: on the inline executor the whole job runs in one process on one core, so events/s is"
        " the per-core figure (the CPU time of each run is in the JSON file); on Ray, events/s divided by the"
        " cores the job's tasks could use (min(tasks, cores of the machine)); there the time includes starting"
        " the job's actors (0.2-0.3 s each, benchmarks/results/ray_executor.md), so use long runs.",
        "- **per core, Flink's count**: the same runs counted as Flink counts, all the events of the stream"
        " (every kind), whichever the query reads. Flink's generator makes all three kinds for every query and"
        " filters them in views; ours makes only the kinds a table asks for, so this figure flatters us, most"
        " for q3 and q8, which read only persons and auctions (8 % of the events). The ratio and the goal use"
        " the first, stricter figure.",
        "- **Flink per core**: github.com/nexmark/nexmark README, Benchmark Results: Flink 1.13, 8 TaskManagers"
        " of 1 slot, 100 million events, Throughput/Cores = events / (cores x seconds), cores measured by a CPU"
        " collector on the workers, with checkpoints every 3 minutes (ours has none in these runs).",
        "- **generator only** rows: the generator's batches of those kinds polled and counted without the"
        " engine: how much of a query's time is generation.",
        "- The machine is shared (see the load average): read the figures as orders of magnitude.",
    ]
    path_stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _executor(kind: str) -> tuple[Executor, Any]:
    if kind == "inline":
        return InlineExecutor(), None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from engine.ray_executor import RayExecutor

    # A local instance of our own: other Ray instances may run on this machine.
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    return RayExecutor(), ray


def _command(argv: list[str]) -> str:
    python = Path(sys.executable)
    if python.is_relative_to(Path.cwd()):
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), "-m", "benchmarks.nexmark.run", *argv])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None, help="events per query (default: sized per query)")
    parser.add_argument("--queries", default=",".join(QUERIES), help="comma-separated, e.g. q0,q1 (default: all)")
    parser.add_argument("--executor", choices=("inline", "ray"), default="inline")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true", help="skip the generator-only rows")
    parser.add_argument("--output", type=Path, default=RESULTS / "nexmark", help="results path without suffix")
    args = parser.parse_args(argv)
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    unknown = [q for q in queries if not (QUERY_DIR / f"{q}.sql").exists()]
    if unknown:
        parser.error(f"unknown queries {unknown}; queries: {', '.join(QUERIES)}")
    if args.parallelism < 1 or args.repeats < 1 or (args.events is not None and args.events < 1):
        parser.error("--parallelism, --repeats and --events must be >= 1")
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": _command(argv if argv is not None else sys.argv[1:]),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "executor": args.executor,
        "parallelism": args.parallelism,
        "repeats": args.repeats,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    executor, ray = _executor(args.executor)
    rows = []
    try:
        if not args.no_baseline:
            config = NexmarkConfig(events=args.events or BASELINE_EVENTS)
            for kinds in (("bid",), ("person", "auction")):
                m = measure_generator(kinds, config, args.repeats)
                rows.append(m.report(None))
                print(f"{m.name:30s} {m.events:>12,} rows {m.median_s:7.2f} s {m.events / (m.median_s or 1):>14,.0f} rows/s")
        for query in queries:
            config = NexmarkConfig(events=args.events or DEFAULT_EVENTS.get(query, 10_000_000))
            m = measure_query(query, config, executor, args.parallelism, args.repeats)
            row = m.report(FLINK_PER_CORE.get(query))
            rows.append(row)
            if m.error:
                print(f"{query:30s} FAILED {m.error.splitlines()[0]}")
            else:
                ratio = row["ratio_to_flink"]
                print(
                    f"{query:30s} {m.events:>12,} events {m.median_s:7.2f} s {row['events_per_s']:>14,.0f} events/s"
                    f"  {row['events_per_s_per_core']:>12,.0f}/core  x{ratio or 0:.1f} Flink  {m.output_rows:,} rows out"
                )
    finally:
        if ray is not None:
            ray.shutdown()
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results({"meta": meta, "results": rows}, args.output)
    print(f"wrote {args.output.with_suffix('.json')} and {args.output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
