"""``citystream loadtest``: drives the real city pipeline (Ray executor, gRPC gateways,
subscribed consoles) with the open-loop cameras and stations of ``workload`` and measures it.

Latency of an incident, detection -> console: from the time the incident was due to the
console's receipt of it. Every incident of the load test is an intrusion scheduled on a
camera; the rule raises it when its one-second window closes, that is once the watermark has
passed the window's end, and the earliest that can be is the scheduled time of the window's
end (the sources' rows are stamped with their due times, out-of-orderness is 0, and the
sources promise progress while quiet). So the latency counted is console receipt minus window
end: the wait for the window to close (the rule's design) is not counted, every delay of the
engine is, and a stalled engine cannot hide its delay behind a slowed-down load.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from benchmarks.loadtest.consoles import RECORD_FIELDS, ConsoleFleet
from benchmarks.loadtest.workload import (
    CLOCK_ACTOR,
    CLOCK_NAMESPACE,
    ConsolePlan,
    Scale,
    Schedule,
    ScheduledDetections,
    ScheduledReadings,
    StartClock,
    consoles,
    load_city,
)
from benchmarks.procinfo import object_store, proc_memory
from engine.errors import OptionError

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def histogram() -> HdrHistogram:
    """Latencies in microseconds, 1 us to 1 hour, 3 significant digits."""
    return HdrHistogram(1, 3_600_000_000, 3)


def figures(h: HdrHistogram) -> dict[str, Any]:
    """Percentiles in ms of a histogram of microseconds."""
    if h.get_total_count() == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "p99.9": None, "max": None, "mean": None}
    out: dict[str, Any] = {"count": h.get_total_count()}
    for p in PERCENTILES:
        out[f"p{p:g}"] = round(h.get_value_at_percentile(p) / 1000, 3)
    out["max"] = round(h.get_max_value() / 1000, 3)
    out["mean"] = round(h.get_mean_value() / 1000, 3)
    return out


@dataclass
class Options:
    """What a load test runs. ``rate``/``duration_s`` give a fixed rate; ``ramp`` (rates) runs
    them one after the other, ``step_s`` each, and stops at the first that misses ``p99_bound_ms``
    or falls behind its rate."""

    rate: float = 10_000.0
    duration_s: float = 30.0
    out: Path = Path("loadtest-results")
    ramp: tuple[float, ...] = ()
    step_s: float = 10.0
    p99_bound_ms: float = 50.0
    scale: Scale = field(default_factory=Scale)
    intrusions_per_s: float = 20.0
    reading_interval_s: float = 1.0
    linger_ms: float = 5.0
    credits: int = 8
    batch_rows: int = 10_000
    max_batch_rows: int = 20_000
    source_interval_ms: float = 5.0
    warmup_s: float = 2.0
    address: str | None = None
    checkpoint_interval_s: float = 0.0
    settle_timeout_s: float = 60.0
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.duration_s > 0:
            raise OptionError("rate/duration", (self.rate, self.duration_s), "a rate > 0 detections/s and a duration > 0 s")
        if any(not r > 0 for r in self.ramp):
            raise OptionError("ramp", self.ramp, "rates > 0 detections/s")
        if not self.step_s > 0 or not self.p99_bound_ms > 0:
            raise OptionError("step_s/p99_bound_ms", (self.step_s, self.p99_bound_ms), "numbers > 0")
        if self.warmup_s < 0:
            raise OptionError("warmup_s", self.warmup_s, "seconds >= 0")

    def schedule(self) -> Schedule:
        steps = tuple((self.step_s, r) for r in self.ramp) if self.ramp else ((self.duration_s, self.rate),)
        return Schedule(steps, self.intrusions_per_s)


@dataclass
class _Second:
    """Figures of one second of the run (by the console's receipt)."""

    latency: HdrHistogram = field(default_factory=histogram)
    incidents: int = 0


def _process_memory() -> dict[str, dict[str, int]]:
    """RSS and private (anonymous) memory, in KiB, of this machine's Ray actor processes, by
    class (``ray::TaskActor`` ...): the engine's actors on a one-machine run."""
    out: dict[str, dict[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        values = proc_memory(int(entry.name)) if cmdline.startswith("ray::") else None
        if values is None:
            continue
        slot = out.setdefault(cmdline.split()[0], {"processes": 0, "rss_kib": 0, "anon_kib": 0})
        slot["processes"] += 1
        slot["rss_kib"] += values.get("VmRSS", 0)
        slot["anon_kib"] += values.get("RssAnon", 0)
    return out


def _object_store() -> dict[str, int]:
    """The object store of this node (``benchmarks.procinfo.object_store``), or nothing if
    the raylet did not answer: one missing sample is not worth failing the run for."""
    try:
        return object_store()
    except Exception:
        return {}


class LoadTest:
    """One run: the job, the consoles, the per-second figures and the final checks."""

    def __init__(self, options: Options, say: Any = print) -> None:
        self.options = options
        self.say = say
        self.schedule = options.schedule()
        self.total = histogram()
        self.parts = {name: histogram() for name in ("due_to_emit", "emit_to_logged", "logged_to_console")}
        self.seconds: dict[int, _Second] = defaultdict(_Second)
        self.per_second: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.start_ms = 0

    # ---- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        import ray

        from actors.city import city_flow
        from engine import ChannelOptions, RayExecutor
        from engine.checkpoint import CheckpointOptions

        o = self.options
        o.out.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="citystream-loadtest-"))
        city = load_city(o.scale, str(work / "incidents"), checkpoint_dir=str(work / "checkpoints"))
        plans = consoles(o.scale)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        channels = ChannelOptions(credits=o.credits, batch_rows=o.batch_rows, linger_ms=o.linger_ms)
        checkpoints = (
            CheckpointOptions(str(work / "checkpoints"), interval_s=o.checkpoint_interval_s)
            if o.checkpoint_interval_s > 0
            else None
        )
        clock_name = f"{CLOCK_ACTOR}-{os.getpid()}-{time.time_ns()}"
        # A local instance: no dashboard, and the actors' logs stay in Ray's log files (the
        # progress bar and the figures are the output).
        local = {"include_dashboard": False, "log_to_driver": False} if o.address is None else {}
        with RayExecutor(o.address, channels=channels, checkpoints=checkpoints, init_options=local) as executor:
            executor.connect()
            clock = StartClock.options(name=clock_name, namespace=CLOCK_NAMESPACE).remote()  # type: ignore[attr-defined]
            ray.get(clock.start_ms.remote())
            cameras = ScheduledDetections(
                city, self.schedule, clock=clock_name, max_batch_rows=o.max_batch_rows, every_ms=o.source_interval_ms
            )
            stations = ScheduledReadings(
                city, self.schedule, interval_s=o.reading_interval_s, clock=clock_name, every_ms=o.source_interval_ms
            )
            flow = city_flow(
                city, cameras=cameras, stations=stations, mode="live", name="loadtest",
                camera_tasks=o.scale.camera_tasks, station_tasks=o.scale.station_tasks,
            )  # fmt: skip
            submitted = time.monotonic()
            job = executor.submit(flow)
            fleet: ConsoleFleet | None = None
            try:
                addresses = self._addresses(city, work / "incidents", timeout=120)
                fleet = ConsoleFleet(plans, addresses)
                fleet.wait_ready(timeout=60)
                startup_s = time.monotonic() - submitted
                # The schedule starts a little ahead, so that its first rows are not due
                # before every source has been told.
                self.start_ms = int(time.time() * 1000) + 500
                ray.get(clock.start.remote(self.start_ms))
                self.say(
                    f"{len(job.tasks)} actors up and {len(plans)} consoles subscribed in {startup_s:.1f} s; "
                    f"offering {self._describe()}"
                )
                stopped_early = self._drive(job, fleet)
                settle = self._settle(job, fleet, plans)
                forced = fleet.close()  # before the gateways stop serving
                stopping = time.monotonic()
                result = job.stop(timeout=120)
                stop_s = time.monotonic() - stopping
            except BaseException:
                job.cancel()
                raise
            finally:
                if fleet is not None and not fleet.closed:
                    fleet.close()
                ray.kill(clock)
                shutil.rmtree(work, ignore_errors=True)  # the run's incident logs (the results are in --out)
        return self._report(city, plans, fleet, result, settle, stopped_early, startup_s, stop_s, forced)

    def _describe(self) -> str:
        o = self.options
        if o.ramp:
            return f"a ramp of {', '.join(f'{r:,.0f}' for r in o.ramp)} detections/s, {o.step_s:g} s each"
        return f"{o.rate:,.0f} detections/s for {o.duration_s:g} s"

    @staticmethod
    def _addresses(city: Any, log_dir: Path, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        addresses: dict[str, str] = {}
        while len(addresses) < len(city.gateways):
            for gateway in city.gateways:
                path = log_dir / f"{gateway.id}.address"
                if gateway.id not in addresses and path.exists() and path.read_text().strip():
                    addresses[gateway.id] = path.read_text().strip()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"gateways {sorted({g.id for g in city.gateways} - set(addresses))} did not serve within {timeout:.0f} s"
                )
            time.sleep(0.05)
        return addresses

    def _take(self, fleet: ConsoleFleet, wait: float) -> None:
        """Takes the consoles' records, for ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            self._record(fleet.poll(max(0.0, min(0.05, deadline - time.monotonic()))))
            if time.monotonic() >= deadline:
                return

    def _record(self, fresh: list[tuple[int, tuple[Any, ...]]]) -> None:
        for _, record in fresh:
            values = dict(zip(RECORD_FIELDS, record, strict=True))
            receive, due = values["receive_ns"], values["window_end_ns"]
            if due is None:
                continue
            micros = max(1, (receive - due) // 1000)
            self.total.record_value(micros)
            second = self.seconds[int((receive / 1e6 - self.start_ms) // 1000)]
            second.latency.record_value(micros)
            second.incidents += 1
            emit, logged = values["emit_ns"], values["logged_ns"]
            if emit is not None:
                self.parts["due_to_emit"].record_value(max(1, (emit - due) // 1000))
                if logged is not None:
                    self.parts["emit_to_logged"].record_value(max(1, (logged - emit) // 1000))
            if logged is not None:
                self.parts["logged_to_console"].record_value(max(1, (receive - logged) // 1000))

    def _drive(self, job: Any, fleet: ConsoleFleet) -> bool:
        """Samples every second until the schedule ends (or a ramp step fails); True if stopped early."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        schedule = self.schedule
        duration_s = schedule.duration_ms / 1000
        last_rows = 0
        # Backpressure counted from the schedule's start (the sources waited for it before).
        last_backpressure = sum(m.backpressure_s for m in job.metrics(timeout=10).values())
        last_t = 0.0
        step_ends = [float(end) / 1000 for end in schedule.boundaries()[0][1:]]
        judged = 0
        progress = Progress(
            TextColumn("[bold]load test"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.fields[figures]}"),
            disable=not self.options.progress,
        )  # fmt: skip
        with progress:
            bar = progress.add_task("load", total=duration_s, figures="starting")
            while True:
                now_s = time.time() - self.start_ms / 1000
                sleep = math.floor(now_s) + 1 - now_s
                self._take(fleet, max(0.0, sleep))
                t = time.time() - self.start_ms / 1000
                if fleet.failures:
                    raise RuntimeError(f"consoles failed: {fleet.failures}")
                metrics = job.metrics(timeout=10)
                if job.state != "running":
                    job.wait(timeout=60)  # raises the job's failure
                rows = sum(m.rows_in for name, m in metrics.items() if name.startswith("cameras["))
                backpressure = sum(m.backpressure_s for m in metrics.values())
                now_ms = int(time.time() * 1000)
                lags = [m.watermark_lag_ms(now_ms) for name, m in metrics.items() if name.startswith("districts[")]
                if t < 0.5:  # the schedule's start: the baseline of the first second
                    last_rows, last_backpressure, last_t = rows, backpressure, t
                    continue
                second = int(t) - 1
                in_second = self.seconds.get(second)
                elapsed = max(t - last_t, 1e-6)
                sample = {
                    "t_s": round(t, 3),
                    "target_per_s": schedule.rate_at((t - elapsed / 2) * 1000),
                    "detections_per_s": round((rows - last_rows) / elapsed, 1),
                    "detections_in": rows,
                    "due_so_far": schedule.rows_due(t * 1000),
                    "incidents_per_s": in_second.incidents if in_second else 0,
                    "latency_ms": figures(in_second.latency) if in_second else figures(histogram()),
                    "watermark_lag_ms": max((lag for lag in lags if lag is not None), default=None),
                    "backpressure_s_per_s": round((backpressure - last_backpressure) / elapsed, 3),
                    "memory": _process_memory(),
                    "object_store": _object_store(),
                }
                self.per_second.append(sample)
                last_rows, last_backpressure, last_t = rows, backpressure, t
                p99 = sample["latency_ms"]["p99"]
                progress.update(
                    bar,
                    completed=min(t, duration_s),
                    figures=(
                        f"{sample['detections_per_s']:>11,.0f} det/s (target {sample['target_per_s']:,.0f})  "
                        f"{sample['incidents_per_s']:>4} inc/s  p99 {'-' if p99 is None else f'{p99:,.1f}'} ms  "
                        f"lag {sample['watermark_lag_ms'] if sample['watermark_lag_ms'] is not None else '-'} ms"
                    ),
                )
                # A ramp step is judged once its incidents are in (a second after it ends).
                while judged < len(step_ends) and self.options.ramp and t >= step_ends[judged] + 1.5:
                    verdict = self._judge(judged, step_ends)
                    self.steps.append(verdict)
                    judged += 1
                    if not verdict["passed"]:
                        return True
                if t >= duration_s + 1.5 and (not self.options.ramp or judged == len(step_ends)):
                    return False

    def _judge(self, index: int, step_ends: list[float]) -> dict[str, Any]:
        """A ramp step passes if the incidents due in it (after the warm-up of the first one)
        reached the consoles with p99 under the bound, and the detections kept up with its rate."""
        begin = step_ends[index - 1] if index else 0.0
        end = step_ends[index]
        rate = self.schedule.steps[index][1]
        skip = self.options.warmup_s if index == 0 else 0.0
        latency = histogram()
        for second, data in self.seconds.items():
            if begin + skip <= second < end:
                latency.add(data.latency)
        # The rate taken in over the step (from the camera actors' counters), and how far the
        # cameras were behind their schedule at its end.
        samples = [s for s in self.per_second if begin <= s["t_s"] <= end + 0.5]
        if len(samples) >= 2 and samples[-1]["t_s"] > samples[0]["t_s"]:
            first, last = samples[0], samples[-1]
            reached = (last["detections_in"] - first["detections_in"]) / (last["t_s"] - first["t_s"])
        else:
            reached = 0.0
        backlog = max(0, samples[-1]["due_so_far"] - samples[-1]["detections_in"]) if samples else 0
        f = figures(latency)
        kept_up = reached >= 0.9 * rate and backlog <= rate * 0.25
        passed = f["p99"] is not None and f["p99"] <= self.options.p99_bound_ms and kept_up
        return {
            "rate": rate,
            "reached_per_s": round(reached, 1),
            "backlog_rows": backlog,
            "latency_ms": f,
            "kept_up": kept_up,
            "passed": passed,
        }

    def _settle(self, job: Any, fleet: ConsoleFleet, plans: list[ConsolePlan]) -> dict[str, Any]:
        """After the schedule: waits until every console has every incident the gateways hold
        that it is entitled to (or the timeout)."""
        deadline = time.monotonic() + self.options.settle_timeout_s
        while True:
            self._take(fleet, 0.2)
            held = _incidents(job.peek())
            missing = _missing(held, plans, fleet.records)
            if not any(missing.values()) or time.monotonic() > deadline:
                return {"gateway_incidents": len(held), "ids": set(held), "missing": {k: len(v) for k, v in missing.items()}}

    # ---- the report ------------------------------------------------------------------------

    def _report(
        self, city: Any, plans: list[ConsolePlan], fleet: ConsoleFleet | None, result: Any, settle: dict[str, Any],
        stopped_early: bool, startup_s: float, stop_s: float, forced: list[str],
    ) -> dict[str, Any]:  # fmt: skip
        import ray

        assert fleet is not None
        final = _incidents(result.outputs)
        records = fleet.records
        missing = _missing(final, plans, records)
        # Windows still open when the job stopped (a ramp stopped early) are closed by its end;
        # the gateways stop serving then, so their incidents cannot reach the consoles.
        raised_by_stop = set(final) - settle.pop("ids")
        for plan in plans:
            missing[plan.index] -= raised_by_stop
        consoles_report = []
        for plan in plans:
            got = [r[0] for r in records[plan.index]]
            entitled = _entitled(final, plan)
            ended = fleet.ended.get(plan.index, {})
            consoles_report.append(
                {
                    "console": plan.index,
                    "gateway": plan.gateway,
                    "districts": list(plan.districts),
                    "entitled": len(entitled),
                    "received": len(got),
                    "distinct": len(set(got)),
                    "missing": len(missing[plan.index]),
                    "missing_ids": sorted(missing[plan.index])[:10],
                    "not_entitled": len(set(got) - entitled),
                    "reconnects": ended.get("reconnects"),
                    "failed": fleet.failures.get(plan.index),
                }
            )
        metrics = result.metrics
        rows_in = sum(m.rows_in for name, m in metrics.items() if name.startswith("cameras["))
        kinds: dict[str, int] = defaultdict(int)
        for row in final.values():
            kinds[row["kind"]] += 1
        expected = self.schedule.total_intrusions() if not stopped_early else None
        after_warmup = histogram()
        for second, data in self.seconds.items():
            if second >= self.options.warmup_s:
                after_warmup.add(data.latency)
        sustained = [
            s["detections_per_s"]
            for s in self.per_second
            if self.options.warmup_s <= s["t_s"] <= self.schedule.duration_ms / 1000
        ]
        report = {
            "command": "citystream loadtest",
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "ray": ray.__version__,
                "load_average": [round(x, 2) for x in os.getloadavg()],
            },
            "options": _jsonable(dataclasses.asdict(self.options)),
            "city": {
                "districts": len(city.districts), "cameras": len(city.cameras), "stations": len(city.stations),
                "gateways": len(city.gateways), "consoles": len(plans),
            },
            "startup_s": round(startup_s, 2),
            "stop_s": round(stop_s, 2),
            "stopped_early": stopped_early,
            "detections": {
                "scheduled": self.schedule.total_rows(),
                "in": rows_in,
                "sustained_mean_per_s": round(sum(sustained) / len(sustained), 1) if sustained else None,
                "sustained_min_per_s": min(sustained) if sustained else None,
            },
            "incidents": {
                "expected_intrusions": expected,
                "raised": len(final),
                "by_kind": dict(kinds),
                "raised_by_stop": len(raised_by_stop),
            },
            "latency_ms": {
                "all": figures(self.total),
                "after_warmup": figures(after_warmup),
                **{k: figures(h) for k, h in self.parts.items()},
            },
            "delivery": {
                "every_console_has_all_it_is_entitled_to": all(
                    c["missing"] == 0 and c["not_entitled"] == 0 and c["distinct"] == c["received"] for c in consoles_report
                ),
                "consoles": consoles_report,
                "settle": settle,
                "consoles_killed": forced,
            },
            "ramp": {
                "steps": self.steps,
                "highest_passing_rate": max((s["rate"] for s in self.steps if s["passed"]), default=None),
                "p99_bound_ms": self.options.p99_bound_ms,
            } if self.options.ramp else None,
            "per_second": self.per_second,
            "refused": {
                name: sum(t.num_rows for t in result.outputs.get(name, []) if hasattr(t, "num_rows"))
                for name in ("refused_detections", "refused_readings", "late_detections")
            },
        }  # fmt: skip
        return report


def _incidents(outputs: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """The gateways' incidents by id (id, gateway, district, kind, window end in ms)."""
    import pyarrow as pa

    tables = [t for t in outputs.get("gateways", []) if isinstance(t, pa.Table) and t.num_rows]
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        ends = table.column("window_end").cast(pa.int64()).to_pylist()
        for incident_id, gateway, district, kind, end in zip(
            table.column("incident_id").to_pylist(), table.column("gateway").to_pylist(), table.column("district").to_pylist(),
            table.column("kind").to_pylist(), ends, strict=True,
        ):  # fmt: skip
            out[incident_id] = {"gateway": gateway, "district": district, "kind": kind, "window_end_ms": end}
    return out


def _entitled(held: dict[str, dict[str, Any]], plan: ConsolePlan) -> set[str]:
    """The incidents a console may see: its gateway's, of the districts its token allows."""
    return {i for i, row in held.items() if row["gateway"] == plan.gateway and row["district"] in plan.districts}


def _missing(
    held: dict[str, dict[str, Any]], plans: list[ConsolePlan], records: dict[int, list[tuple[Any, ...]]]
) -> dict[int, set[str]]:
    return {plan.index: _entitled(held, plan) - {r[0] for r in records[plan.index]} for plan in plans}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(report: dict[str, Any], out: Path) -> list[Path]:
    """result.json, summary.md and plot.png in ``out``."""
    from benchmarks.loadtest.report import markdown, plot

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "result.json", out / "summary.md", out / "plot.png"]
    paths[0].write_text(json.dumps(report, indent=1) + "\n")
    paths[1].write_text(markdown(report))
    plot(report, paths[2])
    return paths


def run(options: Options, say: Any = print) -> tuple[dict[str, Any], list[Path]]:
    report = LoadTest(options, say).run()
    return report, write_results(report, options.out)
