"""Incident dispatch to police consoles: latency through the live city on Ray, and how many
incidents per second one gateway pushes to 10 consoles.

Two parts:

1. Latency, detection -> console, through the real city pipeline on Ray (live mode: the simulated
   camera and weather feeds follow the wall clock): ``actors.city.city_flow(city, mode="live")``
   itself (one camera actor per camera group, one per station, the two edge-ingest sources, idle
   here), its camera feed with higher incident rates than the default (``FEED_RATES``, bound
   into ``actors.simulation.CameraFeed`` while the graph is built: ``city_flow`` has no parameter
   for them, and ``city_flow(cameras=CameraFeed(...))`` would run the cameras as one task, which
   ``CameraFeed`` refuses to open). Gateways and ingest services on free ports, incident logs in
   a temporary directory.
   ``simulation.detections_per_camera_per_s`` is set so that the 12 cameras together produce
   ~1,000 and then ~50,000 detections/s at the current hour (the simulation follows the Korean
   day: the rate is divided by the share of the daytime crowd out at this hour). Channels as
   ``make run`` (credits 8, 10,000 rows, linger 5 ms); the full run adds a run of 1,000
   detections/s with ``linger_ms=0`` (frames go at the end of every processing step).
   10 consoles (``actors.console.ConsoleClient``, grpc.aio, each in its own process, spawned: no
   GIL shared between them) subscribe to the gateway that receives the most incidents
   (incheon-yeonsu-police: Songdo, and fire and yellow dust of every district) with the token
   ioc-demo-token. For every incident each console receives it records ``time.time_ns()``:
   *dispatch* = receive - emit_time (district actor -> gateway actor -> log write + fsync ->
   gRPC -> console), *end to end* = receive - ingest_time (when the latest detection of the
   incident's window left its camera actor: includes the wait for the window to close and the
   watermark to pass it). emit_time and ingest_time are stored in whole milliseconds (truncated),
   so both read up to 1 ms high. The measurement starts once the consoles are subscribed and
   lasts ``--duration`` (60 s, --quick 20 s); then ``job.stop()``. Incidents raised by the stop
   (windows closed by the end of the stream) are counted but left out of the latency figures, as
   are incidents logged before a console subscribed. Detections/s reached: the cameras tasks'
   ``rows_in`` from ``RayJob.metrics()`` every 5 s. Completeness: each console's incident ids
   against the gateway's result table from ``job.stop()``.
2. Push capacity: an in-process ``DispatchServer`` + ``IncidentLog`` (fsync on, as in
   production) and the same 10 console processes. First the server alone, not loaded: 300
   incidents paced (1 every 20 ms, then 10 every 200 ms), latency from logged_time to each
   console. Then N = 20,000 incidents (pre-built protobuf messages; --quick 5,000) appended and
   published in batches of 1, 10 and 100 as fast as the loop goes (append, then publish, as the
   gateway does): incidents/s delivered to all 10 consoles (time from the first append until the
   last console has all N), the cost of each append (write + fsync) and the CPU time of the
   gateway's process and of the consoles. With the config's subscriber queue (1,000: a console
   further behind is disconnected with RESOURCE_EXHAUSTED and resumes from its last sequence
   number after ConsoleClient's 0.5 s retry delay); the largest batch size whose run
   disconnected a console runs again with a queue of N + 1 (not with --quick).

Run: ``python -m benchmarks.dispatch [--quick]``; figures go to benchmarks/results/dispatch.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import itertools
import json
import logging
import multiprocessing
import os
import platform
import queue
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ["RAY_AUTH_MODE"] = "disabled"

import numpy as np

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from actors.topology import City
    from engine import Dataflow
    from protos.citystream.v1 import dispatch_pb2

RESULTS = Path(__file__).parent / "results"
GATEWAY = "incheon-yeonsu-police"
GATEWAY_TASK = "gateways[0]"  # the task of the city's first gateway, incheon-yeonsu-police
TOKEN = "ioc-demo-token"  # console ifez-operations-center: every district
CONSOLES = 10
RATES = (1_000, 50_000)  # detections/s of the 12 cameras together
METRICS_EVERY_S = 5.0
# Episodes per camera and hour of daytime (defaults: crowds 5, loiterers 3, intrusions 5, fires 2,
# collisions 6): at the defaults a minute brings a handful of incidents. Loiterers stay 117-234 s,
# so none is raised within a run of a minute or two whatever the rate.
FEED_RATES: dict[str, Any] = {
    "crowds_per_hour": 60.0,
    "loiterers_per_hour": 3.0,
    "intrusions_per_hour": 900.0,
    "fires_per_hour": 120.0,
    "collisions_per_hour": 60.0,
}
PUSH_INCIDENTS = 20_000
PUSH_BATCHES = (1, 10, 100)


# ---- the consoles (separate processes) -------------------------------------------------------


def console_process(index: int, commands: Any, results: Any) -> None:
    """One console: runs the subscriptions it is told to, one at a time, until told None."""
    while True:
        command = commands.get()
        if command is None:
            return
        try:
            results.put(asyncio.run(_subscription(index, command, results)))
        except Exception as exc:  # reported, not hidden: the driver waits for every console
            results.put({"console": index, "failed": f"{type(exc).__name__}: {exc}"})


async def _subscription(index: int, command: dict[str, Any], results: Any) -> dict[str, Any]:
    import grpc

    from actors.console import ConsoleClient

    client = ConsoleClient(command["address"], command["token"])
    expect: int | None = command.get("expect")
    record = bool(command.get("record"))
    records: list[list[Any]] = []
    sequences: list[int] = []
    count = 0
    done_ns = 0
    error = ""
    subscribed_ns = time.time_ns()
    cpu = time.process_time()
    try:
        async for incident in client.incidents(retry_delay=command["retry_delay"], max_retries=command["max_retries"]):
            now = time.time_ns()
            count += 1
            if count == 1 and command.get("ready"):
                results.put({"console": index, "ready": now})
            if record:
                records.append(
                    [
                        incident.sequence,
                        incident.incident_id,
                        incident.kind,
                        incident.emit_time.ToNanoseconds() if incident.HasField("emit_time") else None,
                        incident.ingest_time.ToNanoseconds() if incident.HasField("ingest_time") else None,
                        incident.logged_time.ToNanoseconds() if incident.HasField("logged_time") else None,
                        now,
                    ]
                )
            else:
                sequences.append(incident.sequence)
            if expect is not None and count >= expect:
                done_ns = now
                break
    except grpc.aio.AioRpcError as exc:
        error = f"{exc.code().name}: {exc.details()}"
    out: dict[str, Any] = {
        "console": index,
        "count": count,
        "subscribed_ns": subscribed_ns,
        "done_ns": done_ns,
        "end": error or ("had all" if done_ns else "stream ended"),
        "disconnects": client.disconnects,
        "reconnects": client.reconnects,
        "cpu_s": round(time.process_time() - cpu, 3),  # this process, all its threads
    }
    if record:
        out["records"] = records
    else:
        out["distinct"] = len(set(sequences))
        out["in_order"] = all(a < b for a, b in itertools.pairwise(sequences))
    return out


class Consoles:
    """The 10 console processes (spawned once, reused by every run)."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.results = context.Queue()
        self.commands = [context.Queue() for _ in range(count)]
        self.processes: list[SpawnProcess] = [
            context.Process(target=console_process, args=(i, self.commands[i], self.results), name=f"console-{i}", daemon=True)
            for i in range(count)
        ]
        for process in self.processes:
            process.start()

    def subscribe(self, **command: Any) -> None:
        for commands in self.commands:
            commands.put(command)

    def wait_ready(self, timeout: float) -> list[int]:
        ready: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(ready) < len(self.commands):
            message = self.results.get(timeout=max(0.0, deadline - time.monotonic()))
            if "ready" not in message:
                raise RuntimeError(f"console {message['console']} ended before it was ready: {message}")
            ready[message["console"]] = message["ready"]
        return [ready[i] for i in range(len(self.commands))]

    def collect(self, timeout: float) -> dict[int, dict[str, Any]]:
        """Every console's report; one that does not report in time is missing from the dict."""
        reports: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(reports) < len(self.commands):
            try:
                message = self.results.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if "ready" in message:
                continue
            reports[message["console"]] = message
        return reports

    def close(self) -> list[str]:
        """Ends the processes; returns the ones that had to be terminated."""
        for commands in self.commands:
            commands.put(None)
        forced = []
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                forced.append(process.name)
                process.terminate()
                process.join(timeout=5)
        return forced


# ---- statistics --------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": len(values),
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "max": round(float(a.max()), 3),
        "mean": round(float(a.mean()), 3),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---- part 1: latency through the live city on Ray ---------------------------------------------


def live_flow(city: City) -> Dataflow:
    """``actors.city.city_flow(city, mode="live")`` itself, its simulated cameras with the incident
    rates of ``FEED_RATES``: city_flow has no parameter for them, and passing
    ``cameras=CameraFeed(...)`` would run the cameras as one task (which ``CameraFeed`` refuses),
    so ``actors.simulation.CameraFeed`` is replaced, while the graph is built, by the same class
    with those rates bound (the source is a plain ``CameraFeed``; Ray pickles it as usual)."""
    from unittest import mock

    import actors.simulation as simulation
    from actors.city import city_flow
    from engine import build_plan

    with mock.patch.object(simulation, "CameraFeed", functools.partial(simulation.CameraFeed, **FEED_RATES)):
        flow = city_flow(city, mode="live", name="dispatch_latency")
    cameras = [n.source for v in build_plan(flow).vertices for n in v.nodes if n.name == "cameras"]
    if len(cameras) != 1 or any(getattr(cameras[0], k, None) != v for k, v in FEED_RATES.items()):
        raise RuntimeError(f"the camera feed of city_flow did not get the rates {FEED_RATES}: {cameras}")
    return flow


def city_for(target_per_s: float, log_dir: str) -> tuple[City, float, float]:
    """The default city with its detection rate set for ``target_per_s`` now, its incident logs
    in ``log_dir``, its gateways and edge-ingest services on free ports; also the activity and
    the per-camera rate."""
    from actors.simulation import _activity
    from actors.topology import load_city

    city = load_city()
    activity = _activity(time.time() * 1000)
    per_camera = target_per_s / len(city.cameras) / activity
    city = dataclasses.replace(
        city,
        simulation=dataclasses.replace(city.simulation, detections_per_camera_per_s=per_camera),
        dispatch=dataclasses.replace(city.dispatch, log_dir=log_dir, ingest_port=0),
        gateways=tuple(dataclasses.replace(g, port=0) for g in city.gateways),
    )
    return city, activity, per_camera


def run_rate(target_per_s: int, linger_ms: float, duration_s: float, consoles: Consoles, log: Any) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from engine import ChannelOptions, RayExecutor

    with tempfile.TemporaryDirectory(prefix="citystream-dispatch-") as log_dir:
        city, activity, per_camera = city_for(target_per_s, log_dir)
        channels = ChannelOptions(linger_ms=linger_ms)  # else as `make run`: credits 8, 10,000 rows
        executor = RayExecutor(channels=channels)
        started = time.perf_counter()
        job = executor.submit(live_flow(city))
        samples: list[tuple[float, int]] = []
        last_metrics: dict[str, Any] = {}
        try:
            address_file = Path(log_dir) / f"{GATEWAY}.address"
            deadline = time.monotonic() + 120
            while not address_file.exists() or not address_file.read_text():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{address_file} did not appear within 120 s")
                time.sleep(0.05)
            address = address_file.read_text().strip()
            serving_s = time.perf_counter() - started
            consoles.subscribe(address=address, token=TOKEN, record=True, retry_delay=0.5, max_retries=2)
            time.sleep(2.0)  # the consoles connect (an incident logged before a console subscribed is left out)
            log(f"  gateway {GATEWAY} serves on {address} {serving_s:.1f} s after submit; measuring {duration_s:.0f} s")
            t0 = time.perf_counter()
            while True:
                now = time.perf_counter() - t0
                metrics = job.metrics()
                last_metrics = metrics
                rows = sum(m.rows_in for name, m in metrics.items() if name.startswith("cameras["))
                samples.append((round(now, 3), rows))
                if now >= duration_s:
                    break
                time.sleep(max(0.0, min(METRICS_EVERY_S, duration_s - now) - (time.perf_counter() - t0 - now)))
            stop_ns = time.time_ns()
            stopping = time.perf_counter()
            result = job.stop(timeout=120)
            stop_s = time.perf_counter() - stopping
        except BaseException:
            job.cancel()
            raise
        reports = consoles.collect(timeout=30)
    tables = [t for t in result.outputs.get("gateways", []) if isinstance(t, pa.Table)]
    incidents = pa.concat_tables(tables) if tables else None
    gateway_rows: list[dict[str, Any]] = []
    by_gateway: Counter[str] = Counter()
    if incidents is not None:
        by_gateway.update(incidents.column("gateway").to_pylist())
        mine = incidents.filter(pc.equal(incidents.column("gateway"), GATEWAY))
        gateway_rows = mine.select(["incident_id", "kind", "emit_time"]).to_pylist()
    gateway_ids = {r["incident_id"] for r in gateway_rows}
    emit_of = {r["incident_id"]: int(r["emit_time"].timestamp() * 1000) for r in gateway_rows}
    end_of_stream = {i for i, ms in emit_of.items() if ms * 1_000_000 >= stop_ns}
    kinds_live = Counter(r["kind"] for r in gateway_rows if r["incident_id"] not in end_of_stream)
    kinds_eos = Counter(r["kind"] for r in gateway_rows if r["incident_id"] in end_of_stream)

    # Latency samples: one per incident and console.
    lat: dict[str, dict[str, list[float]]] = {}
    completeness: list[dict[str, Any]] = []
    excluded_backlog = 0
    detail: dict[str, dict[str, Any]] = {}  # per incident: its times and the dispatch latency at each console
    for index in range(len(consoles.commands)):
        report = reports.get(index)
        if report is None or "records" not in report:
            completeness.append({"console": index, "reported": False, "detail": report})
            continue
        ids = [r[1] for r in report["records"]]
        seqs = [r[0] for r in report["records"]]
        completeness.append(
            {
                "console": index,
                "reported": True,
                "received": len(ids),
                "distinct": len(set(ids)),
                "missing": len(gateway_ids - set(ids)),
                "missing_ids": sorted(gateway_ids - set(ids))[:10],
                "not_in_gateway_table": len(set(ids) - gateway_ids),
                "in_order": all(a < b for a, b in itertools.pairwise(seqs)),
                "end": report["end"],
                "disconnects": report["disconnects"],
            }
        )
        for sequence, incident_id, kind, emit_ns, ingest_ns, logged_ns, receive_ns in report["records"]:
            if incident_id in end_of_stream:
                continue
            if logged_ns is not None and logged_ns < report["subscribed_ns"]:
                excluded_backlog += 1
                continue
            entry = detail.setdefault(
                incident_id,
                {"sequence": sequence, "kind": kind, "emit_ms": None if emit_ns is None else emit_ns // 1_000_000,
                 "ingest_ms": None if ingest_ns is None else ingest_ns // 1_000_000, "logged_ns": logged_ns, "dispatch_ms": []},
            )  # fmt: skip
            if emit_ns is not None:
                entry["dispatch_ms"].append(round((receive_ns - emit_ns) / 1e6, 3))
            for group in (kind, "all"):
                bucket = lat.setdefault(group, {"dispatch": [], "end_to_end": [], "emit_to_logged": [], "logged_to_console": []})
                if emit_ns is not None:
                    bucket["dispatch"].append((receive_ns - emit_ns) / 1e6)
                if ingest_ns is not None:
                    bucket["end_to_end"].append((receive_ns - ingest_ns) / 1e6)
                if emit_ns is not None and logged_ns is not None:
                    bucket["emit_to_logged"].append((logged_ns - emit_ns) / 1e6)
                if logged_ns is not None:
                    bucket["logged_to_console"].append((receive_ns - logged_ns) / 1e6)
    latency = {
        group: {measure: summary(values) | {"incidents": kinds_live.get(group, sum(kinds_live.values()))}
                for measure, values in bucket.items()}
        for group, bucket in sorted(lat.items(), key=lambda kv: (kv[0] == "all", kv[0]))
    }  # fmt: skip
    # Incidents reach the gateway in bursts: the windows of a rule all close at the same time.
    appends = Counter(entry["logged_ns"] for entry in detail.values())
    burst_sizes = [appends[k] for k in sorted(appends, key=lambda k: k or 0)]
    reached = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0]) if len(samples) > 1 else None
    steps = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(samples) if b[0] > a[0]]
    # Processing time per frame and hop latency of each task: the sample the tasks held just before the stop
    # (the stop's drain closes every window at once).
    metrics = last_metrics or result.metrics
    complete = all(c.get("reported") and c["missing"] == 0 and c["not_in_gateway_table"] == 0 for c in completeness)
    out: dict[str, Any] = {
        "target_detections_per_s": target_per_s,
        "activity_share_now": round(activity, 3),
        "detections_per_camera_per_s_config": round(per_camera, 1),
        "duration_s": duration_s,
        "detections_per_s_reached": None if reached is None else round(reached, 1),
        "detections_per_s_by_interval": [round(s, 1) for s in steps],
        "camera_rows_samples": samples,
        "stop_s": round(stop_s, 2),
        "incidents_by_gateway": dict(by_gateway),
        "gateway_incidents": len(gateway_ids),
        "gateway_incidents_live_by_kind": dict(kinds_live),
        "gateway_incidents_end_of_stream_by_kind": dict(kinds_eos),
        "samples_excluded_logged_before_subscribe": excluded_backlog,
        "appends_of_measured_incidents": len(burst_sizes),
        "incidents_per_append": burst_sizes,
        "linger_ms": linger_ms,
        "latency_ms": latency,
        "every_console_got_every_incident": complete,
        "consoles": completeness,
        "late_detections": result.table("late_detections").num_rows,
        "refused_detections": result.table("refused_detections").num_rows,
        "refused_readings": result.table("refused_readings").num_rows,
        "tasks": {
            name: {
                "rows_in": m.rows_in,
                "backpressure_s": round(m.backpressure_s, 3),
                "processing_ms_per_frame": summary(m.batch_latency_ms),
                "hop_latency_ms": summary(m.hop_latency_ms),
            }
            for name, m in metrics.items()
        },
        "loadavg_after": loadavg(),
        "incidents": dict(sorted(detail.items(), key=lambda kv: kv[1]["sequence"])),
    }
    a = latency.get("all", {})
    log(
        f"  reached {out['detections_per_s_reached']} detections/s; {len(gateway_ids)} incidents at {GATEWAY} "
        f"({sum(kinds_eos.values())} raised by the stop); every console got every one: {complete}; "
        f"dispatch p50/p99 {a.get('dispatch', {}).get('p50')}/{a.get('dispatch', {}).get('p99')} ms, "
        f"end to end p50/p99 {a.get('end_to_end', {}).get('p50')}/{a.get('end_to_end', {}).get('p99')} ms; stop {stop_s:.1f} s"
    )
    return out


def part_latency(duration_s: float, plan: list[tuple[int, float]], consoles: Consoles, log: Any) -> dict[str, Any]:
    runs = []
    for rate, linger_ms in plan:
        log(f"1. latency at {rate:,} detections/s, linger {linger_ms:g} ms, {duration_s:.0f} s, {CONSOLES} consoles")
        runs.append(run_rate(rate, linger_ms, duration_s, consoles, log))
    return {"feed_rates_per_camera_per_hour": FEED_RATES, "gateway": GATEWAY, "consoles": len(consoles.commands), "runs": runs}


# ---- part 2: incidents per second one gateway pushes to 10 consoles ---------------------------


def make_incidents(count: int, offset: int) -> list[dispatch_pb2.Incident]:
    """Incidents the size of real ones (~350 bytes: evidence, cameras, weather, timestamps)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from protos.citystream.v1 import dispatch_pb2

    now = time.time_ns()
    out = []
    for i in range(offset, offset + count):
        stamp = Timestamp()
        stamp.FromNanoseconds(now)
        incident = dispatch_pb2.Incident(
            incident_id=f"intrusion:songdo:songdo-central-park:lake-shore:{i}:1780000000000",
            district=("songdo", "yeongjong", "cheongna")[i % 3],
            kind="intrusion",
            severity=3,
            cameras=["songdo-central-park"],
            evidence=f"person track {i} in restricted zone lake-shore of songdo-central-park: 42 detections, "
            "confidence up to 0.93",
            weather=dispatch_pb2.Weather(
                temperature=14.2,
                humidity=61.0,
                wind_speed=3.4,
                wind_direction=250.0,
                pm10=48.0,
                precipitation=0.0,
                visibility=16000.0,
            ),
        )
        for name in ("window_start", "window_end", "trigger_time", "ingest_time", "emit_time"):
            getattr(incident, name).CopyFrom(stamp)
        out.append(incident)
    return out


def paced_run(batch: int, interval_ms: float, total: int, consoles: Consoles, log: Any) -> dict[str, Any]:
    """The dispatch server alone, not loaded: ``batch`` incidents every ``interval_ms``; latency from
    logged_time (taken when the append starts: write + fsync included) to each console."""
    from actors.dispatch import DispatchServer
    from actors.incident_log import IncidentLog
    from actors.topology import load_city

    city = load_city()
    incidents = make_incidents(total, 1)
    with tempfile.TemporaryDirectory(prefix="citystream-paced-") as directory:
        incident_log = IncidentLog(directory, "paced", fsync=True)
        server = DispatchServer("paced", 0, city.dispatch, incident_log, city.district_ids())
        try:
            address = server.start()
            server.publish(incident_log.append(make_incidents(1, 0)))
            consoles.subscribe(
                address=address, token=TOKEN, expect=total + 1, ready=True, record=True, retry_delay=0.5, max_retries=5
            )
            consoles.wait_ready(timeout=60)
            next_at = time.perf_counter()
            for i in range(0, total, batch):
                now = time.perf_counter()
                if now < next_at:
                    time.sleep(next_at - now)
                server.publish(incident_log.append(incidents[i : i + batch]))
                next_at += interval_ms / 1000
            reports = consoles.collect(timeout=60)
        finally:
            server.stop()
            incident_log.close()
    latencies: list[float] = []
    spreads: dict[int, list[int]] = {}
    complete = len(reports) == CONSOLES
    for report in reports.values():
        records = [r for r in report.get("records", []) if r[0] > 1]
        complete = complete and len(records) == total
        for sequence, _id, _kind, _emit, _ingest, logged_ns, receive_ns in records:
            latencies.append((receive_ns - logged_ns) / 1e6)
            spreads.setdefault(sequence, []).append(receive_ns)
    last_console = [(max(v) - min(v)) / 1e6 for v in spreads.values()]
    out: dict[str, Any] = {
        "batch": batch,
        "interval_ms": interval_ms,
        "incidents": total,
        "every_console_had_all": complete,
        "logged_to_console_ms": summary(latencies),
        "first_to_last_console_ms": summary(last_console),
    }
    lat = out["logged_to_console_ms"]
    log(f"  paced, {batch} every {interval_ms:g} ms: logged -> console p50/p99/max {lat['p50']}/{lat['p99']}/{lat['max']} ms")
    return out


def push_run(batch: int, queue_size: int, total: int, consoles: Consoles, log: Any) -> dict[str, Any]:
    from actors.dispatch import DispatchServer
    from actors.incident_log import IncidentLog
    from actors.topology import load_city

    city = load_city()
    config = dataclasses.replace(city.dispatch, subscriber_queue=queue_size)
    incidents = make_incidents(total, 1)
    with tempfile.TemporaryDirectory(prefix="citystream-push-") as directory:
        incident_log = IncidentLog(directory, "push", fsync=True)
        server = DispatchServer("push", 0, config, incident_log, city.district_ids())
        try:
            address = server.start()
            # One incident first: once every console has it, every console is subscribed.
            server.publish(incident_log.append(make_incidents(1, 0)))
            consoles.subscribe(address=address, token=TOKEN, expect=total + 1, ready=True, retry_delay=0.5, max_retries=5)
            consoles.wait_ready(timeout=60)
            appends: list[float] = []
            usage = resource.getrusage(resource.RUSAGE_SELF)
            start_ns = time.time_ns()
            t0 = time.perf_counter()
            for i in range(0, total, batch):
                a = time.perf_counter()
                stored = incident_log.append(incidents[i : i + batch])
                appends.append((time.perf_counter() - a) * 1000)
                server.publish(stored)
            loop_s = time.perf_counter() - t0
            reports = consoles.collect(timeout=180)
            after = resource.getrusage(resource.RUSAGE_SELF)
            gateway_cpu_s = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
        finally:
            server.stop()
            incident_log.close()
    done = [r["done_ns"] for r in reports.values() if r.get("done_ns")]
    all_done = len(done) == len(consoles.commands)
    delivered_s = (max(done) - start_ns) / 1e9 if all_done else None
    disconnects = {i: len(r.get("disconnects", [])) for i, r in sorted(reports.items())}
    reasons = Counter(d.split(":")[0] for r in reports.values() for d in r.get("disconnects", []))
    out: dict[str, Any] = {
        "batch": batch,
        "subscriber_queue": queue_size,
        "incidents": total,
        "appends": len(appends),
        "append_ms": summary(appends),
        "append_us_per_incident_mean": round(float(np.mean(appends)) * 1000 / batch, 1),
        "append_loop_s": round(loop_s, 3),
        "appended_per_s": round(total / loop_s, 1),
        "every_console_had_all": all_done and all(r["distinct"] == total + 1 and r["in_order"] for r in reports.values()),
        "delivered_s": None if delivered_s is None else round(delivered_s, 3),
        "delivered_per_s_to_all": None if delivered_s is None else round(total / delivered_s, 1),
        "gateway_process_cpu_s": round(gateway_cpu_s, 2),
        "consoles_cpu_s": round(sum(r.get("cpu_s", 0.0) for r in reports.values()), 2),
        "console_done_s": sorted(round((d - start_ns) / 1e9, 3) for d in done),
        "disconnects_per_console": disconnects,
        "disconnect_reasons": dict(reasons),
        "console_reports": [{k: v for k, v in r.items() if k != "disconnects"} for _, r in sorted(reports.items())],
    }
    log(
        f"  batch {batch:>3}, queue {queue_size:>6,}: append p50 {out['append_ms']['p50']} ms, loop {loop_s:.2f} s; "
        f"delivered to all {CONSOLES} in {out['delivered_s']} s = {out['delivered_per_s_to_all']} incidents/s; "
        f"disconnects {sum(disconnects.values())}"
    )
    return out


def part_push(total: int, consoles: Consoles, log: Any, unbounded: bool) -> dict[str, Any]:
    """Each batch size with the config's subscriber queue; then, with ``unbounded``, again with a
    queue of ``total`` + 1 for the largest batch size whose first run disconnected a console."""
    from actors.topology import load_city

    configured = load_city().dispatch.subscriber_queue
    log(f"2. the dispatch server alone, paced, {CONSOLES} consoles")
    paced = [paced_run(1, 20.0, 300, consoles, log), paced_run(10, 200.0, 300, consoles, log)]
    runs = []
    log(f"2. push {total:,} incidents to {CONSOLES} consoles, subscriber queue {configured:,}")
    for batch in PUSH_BATCHES:
        runs.append(push_run(batch, configured, total, consoles, log))
    again = [r["batch"] for r in runs if sum(r["disconnects_per_console"].values())]
    if unbounded and again:
        batch = max(again)
        log(f"2. again with a subscriber queue of {total + 1:,} for batch {batch} (no disconnect possible)")
        runs.append(push_run(batch, total + 1, total, consoles, log))
    return {"incidents": total, "consoles": CONSOLES, "configured_queue": configured, "paced": paced, "runs": runs}


# ---- report -----------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _label(run: dict[str, Any]) -> str:
    return f"{run['target_detections_per_s']:,} ({run['linger_ms']:g} ms)"


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "# Incident dispatch: detection -> console latency on Ray, and push capacity of one gateway",
        "",
        f"{meta['when']}, {meta['cpus']} CPUs, Python {meta['python']}, Ray {meta['ray']}, grpcio {meta['grpcio']}, "
        f"pyarrow {meta['pyarrow']}{', --quick' if meta['quick'] else ''}. Load average (1/5/15 min) at start "
        f"{meta['loadavg_start']}, at end {meta['loadavg_end']}. {meta['consoles']} consoles, each a separate process "
        f"(`actors.console.ConsoleClient`, grpc.aio), token {TOKEN}.",
    ]
    if "latency" in report:
        lat = report["latency"]
        rates = ", ".join(f"{k.removesuffix('_per_hour')} {v:g}" for k, v in lat["feed_rates_per_camera_per_hour"].items())
        lines += [
            "",
            f"## 1. Latency through the live city on Ray (consoles on {lat['gateway']})",
            "",
            "The city graph of `actors.city.city_flow` (3 camera actors, 4 station actors, 2 edge-ingest actors, idle: no "
            "device pushes; 3 district actors, 3 gateway actors), live, channels as `make run` (credits 8, 10,000 rows, "
            "linger 5 ms; each run's linger in brackets), episodes per camera and hour: "
            f"{rates}. *Dispatch* = console receive - emit_time (district actor -> gateway actor -> log write + fsync -> "
            "gRPC -> console); *end to end* = console receive - ingest_time, which includes the wait for the rule's window "
            "to close (intrusion 60 s, crowd 30 s, road 30 s, fire 10 s tumbling windows) and for the watermark "
            "(out-of-orderness 500 ms) to pass it: an intruder seen early in a 60 s window waits up to a minute. "
            "emit_time and ingest_time are whole milliseconds (truncated): both figures read up to 1 ms high. "
            "One sample per incident and console; incidents raised by `job.stop()` (windows closed by the end of the "
            "stream) are counted but not in the latency figures.",
            "",
            "| target det/s (linger) | config det/s per camera (activity now) | det/s reached | run s | incidents at gateway "
            "(live + raised by stop) | by kind (live) | every console got every incident | stop s |",
            "|---:|---:|---:|---:|---:|---|---|---:|",
        ]
        for r in lat["runs"]:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["gateway_incidents_live_by_kind"].items())) or "—"
            live = sum(r["gateway_incidents_live_by_kind"].values())
            eos = sum(r["gateway_incidents_end_of_stream_by_kind"].values())
            lines.append(
                f"| {_label(r)} "
                f"| {r['detections_per_camera_per_s_config']:,.1f} ({r['activity_share_now']}) "
                f"| {_f(r['detections_per_s_reached'], 0)} | {r['duration_s']:.0f} | {live} + {eos} | {kinds} "
                f"| {'yes' if r['every_console_got_every_incident'] else 'NO'} | {r['stop_s']:.1f} |"
            )
        lines += [
            "",
            "| target det/s (linger) | kind | incidents | samples | dispatch p50 ms | p90 | p99 | max "
            "| end to end p50 ms | p90 | p99 | max |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in lat["runs"]:
            for kind, m in r["latency_ms"].items():
                d, e = m["dispatch"], m["end_to_end"]
                lines.append(
                    f"| {_label(r)} | {kind} | {d['incidents']} | {d['n']} "
                    f"| {_f(d['p50'])} | {_f(d['p90'])} | {_f(d['p99'])} | {_f(d['max'])} "
                    f"| {_f(e['p50'])} | {_f(e['p90'])} | {_f(e['p99'])} | {_f(e['max'])} |"
                )
        lines += [
            "",
            "Dispatch split at the gateway's logged_time (taken when the append starts, before the write and fsync): "
            "*emit -> logged* = the channel from the district actor (linger up to 5 ms, Ray call) and the gateway's "
            "Arrow -> protobuf conversion; *logged -> console* = write + fsync, hand-over to the gRPC event loop, gRPC, "
            "the console's parsing. All kinds:",
            "",
            "| target det/s (linger) | emit -> logged p50 ms | p90 | p99 | max | logged -> console p50 ms | p90 | p99 | max |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in lat["runs"]:
            a = r["latency_ms"].get("all")
            if a is None:
                continue
            e, c = a["emit_to_logged"], a["logged_to_console"]
            lines.append(
                f"| {_label(r)} | {_f(e['p50'])} | {_f(e['p90'])} | {_f(e['p99'])} | {_f(e['max'])} "
                f"| {_f(c['p50'])} | {_f(c['p90'])} | {_f(c['p99'])} | {_f(c['max'])} |"
            )
        lines += [
            "",
            "Tasks on the path (from the tasks' own samples, `TaskMetrics`, just before the stop): processing time per frame "
            "of the district actors (an incident waits in the district's outbox until the frame that raised it is done; then "
            "up to the linger), and the hop latency into the gateway actor that serves the consoles (Ray call, sender -> task):",
            "",
            "| target det/s (linger) | task | frames | processing per frame p50 ms | p99 | max "
            "| hop into it p50 ms | p99 | max |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in lat["runs"]:
            for name, t in r["tasks"].items():
                if not name.startswith("districts[") and name != GATEWAY_TASK:
                    continue
                b, h = t["processing_ms_per_frame"], t["hop_latency_ms"]
                lines.append(
                    f"| {_label(r)} | {name} | {b['n']} | {_f(b['p50'], 2)} | {_f(b['p99'], 2)} | {_f(b['max'], 2)} "
                    f"| {_f(h['p50'], 2)} | {_f(h['p99'], 2)} | {_f(h['max'], 2)} |"
                )
        lines += ["", "Detections/s of the cameras per 5 s interval (from `RayJob.metrics()`):", ""]
        for r in lat["runs"]:
            rates_seen = ", ".join(f"{v:,.0f}" for v in r["detections_per_s_by_interval"])
            lines.append(f"- {_label(r)}: {rates_seen}")
        lines += ["", "Incidents per gateway append (bursts: the windows of a rule close together), measured incidents only:", ""]
        for r in lat["runs"]:
            lines.append(f"- {_label(r)}: {r['appends_of_measured_incidents']} appends: {r['incidents_per_append']}")
        lines += [
            "",
            "Per console: incidents received / missing against the gateway's result table; how the streams ended "
            "(after `job.stop()` the gateway's server stops: the consoles retry twice, then give up):",
            "",
        ]
        for r in lat["runs"]:
            parts = []
            ends: Counter[str] = Counter()
            for c in r["consoles"]:
                if not c.get("reported"):
                    parts.append(f"#{c['console']} did not report")
                    continue
                parts.append(f"#{c['console']} {c['received']}/{c['missing']}")
                ends[c["end"].split(":")[0]] += 1
            lines.append(f"- {_label(r)}: " + ", ".join(parts) + "; ended: " + ", ".join(f"{k} x{n}" for k, n in ends.items()))
    if "push" in report:
        push = report["push"]
        lines += [
            "",
            f"## 2. Push capacity: one gateway, {push['consoles']} consoles, {push['incidents']:,} incidents",
            "",
            "In-process `DispatchServer` + `IncidentLog` (fsync on); each console a separate process. Incidents are "
            "pre-built protobuf messages (~350 bytes; the gateway's Arrow -> protobuf conversion is not in these figures), "
            "appended and published in a loop as fast as it goes (append, then publish, as the gateway does). *Delivered*: "
            "from the first append until the last console has all of them. Queue = the server's subscriber queue (config: "
            f"{push['configured_queue']:,}; a console further behind is disconnected with RESOURCE_EXHAUSTED and resumes "
            "after ConsoleClient's 0.5 s retry delay); the largest batch size whose run disconnected a console runs again "
            "with a queue that holds every incident. CPU: user + sys of the gateway's process (the append loop and the gRPC "
            "server's thread share one GIL) and of the 10 console processes, from the first append until the last console "
            "is done.",
            "",
            "The server alone, not loaded (one console process each; latency from logged_time, taken when the append "
            "starts, to each console's receive; first -> last console: spread of one incident's arrival over the 10):",
            "",
            "| paced | incidents | every console had all | logged -> console p50 ms | p90 | p99 | max "
            "| first -> last console p50 ms | p99 | max |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in push["paced"]:
            c, f = p["logged_to_console_ms"], p["first_to_last_console_ms"]
            lines.append(
                f"| {p['batch']} every {p['interval_ms']:g} ms | {p['incidents']} "
                f"| {'yes' if p['every_console_had_all'] else 'NO'} "
                f"| {_f(c['p50'], 2)} | {_f(c['p90'], 2)} | {_f(c['p99'], 2)} | {_f(c['max'], 2)} "
                f"| {_f(f['p50'], 2)} | {_f(f['p99'], 2)} | {_f(f['max'], 2)} |"
            )
        lines += [
            "",
            "Push as fast as it goes:",
            "",
            "| queue | incidents per append | appends | append (write + fsync) p50 ms | p99 | max | µs per incident (mean) "
            "| append loop s | delivered to all s | incidents/s to all 10 | disconnects (all consoles) "
            "| gateway process CPU s | consoles CPU s (sum of 10) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in push["runs"]:
            a = r["append_ms"]
            lines.append(
                f"| {r['subscriber_queue']:,} | {r['batch']} | {r['appends']:,} | {_f(a['p50'], 3)} | {_f(a['p99'], 3)} "
                f"| {_f(a['max'], 3)} | {_f(r['append_us_per_incident_mean'])} | {r['append_loop_s']:.2f} "
                f"| {_f(r['delivered_s'], 2)} | {_f(r['delivered_per_s_to_all'], 0)} "
                f"| {sum(r['disconnects_per_console'].values())} | {r['gateway_process_cpu_s']:.1f} | {r['consoles_cpu_s']:.1f} |"
            )
        bad = [r for r in push["runs"] if not r["every_console_had_all"]]
        lines += [
            "",
            "Every console had every incident, once and in order, in every run."
            if not bad
            else "NOT every console had every incident: "
            + ", ".join(f"batch {r['batch']} queue {r['subscriber_queue']}" for r in bad),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s per rate instead of 60 s, 5,000 incidents per push run")
    parser.add_argument("--duration", type=float, default=None, help="seconds measured per rate (default 60, --quick 20)")
    parser.add_argument("--rates", type=int, nargs="*", default=None, help=f"detections/s (default {RATES})")
    parser.add_argument("--linger-ms", type=float, default=5.0, help="channels' linger (default 5, as `make run`)")
    parser.add_argument("--no-linger0", action="store_true", help="skip the run of the first rate with linger_ms=0")
    parser.add_argument(
        "--incidents", type=int, default=None, help=f"incidents per push run (default {PUSH_INCIDENTS:,}, --quick 5,000)"
    )
    parser.add_argument("--only", nargs="*", choices=("latency", "push"), default=None)
    args = parser.parse_args(argv)
    duration = args.duration or (20.0 if args.quick else 60.0)
    plan = [(rate, args.linger_ms) for rate in args.rates or RATES]
    if not args.quick and not args.no_linger0:
        plan.append((plan[0][0], 0.0))
    parts = set(args.only or ("latency", "push"))

    def log(text: str) -> None:
        print(text, flush=True)

    import grpc
    import pyarrow as pa
    import ray

    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "ray": ray.__version__,
        "grpcio": grpc.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "consoles": CONSOLES,
        "console_processes": "multiprocessing spawn context, one process per console",
        "loadavg_start": loadavg(),
    }
    started = time.perf_counter()
    report: dict[str, Any] = {"meta": meta}
    consoles = Consoles(CONSOLES)
    try:
        if "latency" in parts:
            # A local instance of our own (address="local"): other Ray instances may run on this machine.
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
            try:
                report["latency"] = part_latency(duration, plan, consoles, log)
            finally:
                ray.shutdown()
        if "push" in parts:
            report["push"] = part_push(args.incidents or (5_000 if args.quick else PUSH_INCIDENTS), consoles, log, not args.quick)
    finally:
        meta["consoles_terminated"] = consoles.close()
    meta["loadavg_end"] = loadavg()
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dispatch.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    if parts == {"latency", "push"}:
        (RESULTS / "dispatch.md").write_text(text)
    print(text)
    log(f"done in {meta['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    # Run as the importable module, so that Ray workers and the console processes find the
    # functions above under benchmarks.dispatch (not __main__).
    from benchmarks import dispatch

    raise SystemExit(dispatch.main())
