"""What checkpoints cost and how fast the city job recovers, on Ray.

1. The default city job (simulated cameras and stations, replay at full speed) with a
   checkpoint every second: each checkpoint's duration (trigger to manifest) and size.
2. Throughput with checkpoints every second against none, where the engine is the bottleneck:
   the city's fusion job fed from detections and readings generated beforehand (tables), so
   that the simulator's speed does not hide the cost. Runs alternate; the median is reported.
3. Recovery: a district actor is killed (``ray.kill``) after the first checkpoint; the time
   until the coordinator saw it, until every task of the new generation ran, and until the
   district handled rows again.

Run: ``python -m benchmarks.checkpoints`` (``--quick`` for a short run); figures go to
benchmarks/results/checkpoints.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray

from actors.city import city_flow
from actors.simulation import replay_tables
from actors.topology import City, load_city
from engine import ChannelOptions, RayExecutor, Source
from engine.checkpoint import CheckpointOptions, CheckpointStorage
from engine.sources import END_OF_INPUT, EndOfInput

RESULTS = Path(__file__).parent / "results"
CHANNELS = ChannelOptions(linger_ms=2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _scratch(city: City, root: Path) -> City:
    import dataclasses

    return dataclasses.replace(
        city,
        dispatch=dataclasses.replace(city.dispatch, log_dir=str(root / "incidents")),
        checkpoints=dataclasses.replace(city.checkpoints, directory=str(root / "checkpoints")),
    )


def checkpoint_figures(city: City, root: Path, duration_s: float, seed: int) -> dict[str, Any]:
    """The default city job with a checkpoint every second."""
    options = CheckpointOptions(str(root / "ckpt-default"), interval_s=1.0)
    executor = RayExecutor(channels=CHANNELS, checkpoints=options)
    started = time.perf_counter()
    result = executor.run(city_flow(city, mode="replay", duration_s=duration_s, seed=seed, serve=False), timeout=3600)
    wall = time.perf_counter() - started
    stats = result.checkpoints
    assert stats is not None
    storage = CheckpointStorage(options.directory, "city")
    manifest = storage.read_manifest(storage.ids()[-1])  # the job's end gives up one still running
    per_task = sorted(((entry["task"], entry["size"]) for entry in manifest["tasks"].values()), key=lambda item: -item[1])
    detections = sum(m.rows_in for name, m in result.metrics.items() if name.startswith("cameras["))
    return {
        "replay_s": duration_s,
        "wall_s": round(wall, 2),
        "detections": detections,
        "checkpoints_completed": stats.completed,
        "checkpoints_given_up": stats.aborted,
        "duration_ms_p50": round(_percentile(stats.durations_ms, 0.5), 1),
        "duration_ms_p90": round(_percentile(stats.durations_ms, 0.9), 1),
        "duration_ms_max": round(max(stats.durations_ms), 1) if stats.durations_ms else None,
        "size_bytes_last": stats.last_size,
        "largest_tasks": per_task[:5],
    }


class RepeatedTable(Source):
    """A table followed by copies of itself shifted ``span_s`` forward each time, cut into
    batches: a long input (the city's time keeps going) at the cost of a short one in memory.
    Replayable: its place is the number of batches it has given."""

    replayable = True

    def __init__(self, table: pa.Table, times: int, span_s: float, batch_size: int = 10_000) -> None:
        self.schema = table.schema
        self._batches = table.combine_chunks().to_batches(max_chunksize=batch_size)
        self._times, self._span_ms = times, int(span_s * 1000)
        self._index = self._place = 0
        self._ts = self.schema.get_field_index("ts")

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        copy, index = divmod(self._place, len(self._batches))
        if copy >= self._times:
            return END_OF_INPUT
        self._place += 1
        batch = self._batches[index]
        if copy == 0:
            return batch
        field = self.schema.field(self._ts)
        moved = pc.add(batch.column(self._ts).cast(pa.int64()), copy * self._span_ms).cast(field.type)
        return batch.set_column(self._ts, field, moved)

    def snapshot(self) -> Any:
        return self._place

    def restore(self, state: Any) -> None:
        self._place = int(state)


def fusion_flow(city: City, detections: pa.Table, readings: pa.Table, times: int, span_s: float) -> Any:
    return city_flow(
        city,
        cameras=RepeatedTable(detections, times, span_s),
        stations=RepeatedTable(readings, times, span_s, batch_size=50),
        serve=False,
    )


def throughput(
    city: City, root: Path, detections: pa.Table, readings: pa.Table, times: int, span_s: float, rounds: int
) -> dict[str, Any]:
    """Detections per second through the fusion job, checkpoints every second against none."""
    runs: dict[str, list[float]] = {"none": [], "every 1 s": []}
    completed: list[int] = []
    for round_ in range(rounds):
        for label in ("none", "every 1 s"):
            options = None if label == "none" else CheckpointOptions(str(root / f"ckpt-tp-{round_}"), interval_s=1.0)
            executor = RayExecutor(channels=CHANNELS, checkpoints=options)
            job = executor.submit(fusion_flow(city, detections, readings, times, span_s))
            started = time.perf_counter()  # the actors have started: processing only
            result = job.wait(timeout=3600)
            elapsed = time.perf_counter() - started
            runs[label].append(detections.num_rows * times / elapsed)
            if result.checkpoints is not None:
                completed.append(result.checkpoints.completed)
    none, every = statistics.median(runs["none"]), statistics.median(runs["every 1 s"])
    return {
        "detections": detections.num_rows * times,
        "readings": readings.num_rows * times,
        "rounds": rounds,
        "detections_per_s": {k: [round(v) for v in vs] for k, vs in runs.items()},
        "median_none": round(none),
        "median_every_1s": round(every),
        "cost_percent": round((1 - every / none) * 100, 1),
        "checkpoints_per_run": completed,
    }


def recovery(city: City, root: Path, duration_s: float, seed: int, kills: int) -> list[dict[str, Any]]:
    """Kills districts[1] once per run, after the first checkpoint."""
    figures = []
    for run in range(kills):
        options = CheckpointOptions(str(root / f"ckpt-recovery-{run}"), interval_s=1.0)
        executor = RayExecutor(channels=CHANNELS, checkpoints=options)
        job = executor.submit(city_flow(city, mode="replay", duration_s=duration_s, seed=seed, serve=False))
        while (job.status()["checkpoints"].completed or 0) < 1:
            time.sleep(0.02)
        time.sleep(0.5 + run * 0.3)
        info = job.tasks["districts[1]"]
        killed_at = time.time()
        ray.kill(ray.get_actor(info["actor"], namespace=info["namespace"]), no_restart=True)
        while not job.recoveries:
            time.sleep(0.01)
        record = job.recoveries[0]
        while True:  # the new district actor handles rows again
            metrics = job.metrics(timeout=5).get("districts[1]")
            if metrics is not None and metrics.rows_in > 0:
                processing_at = time.time()
                break
            time.sleep(0.01)
        job.wait(timeout=3600)
        figures.append(
            {
                "noticed_s": round(record.failed_at - killed_at, 3),
                "tasks_running_s": round(record.running_at - killed_at, 3),
                "processing_again_s": round(processing_at - killed_at, 3),
                "from_checkpoint": record.checkpoint_id,
            }
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the benchmark)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    replay_s = 120.0 if args.quick else 600.0
    table_s = 600.0
    rounds = 1 if args.quick else 3
    load = os.getloadavg()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="citystream-bench-") as scratch:
            root = Path(scratch)
            city = _scratch(load_city(), root)
            default = checkpoint_figures(city, root, replay_s, args.seed)
            detections, readings = replay_tables(city, table_s, args.seed)
            cost = throughput(city, root, detections, readings, 1 if args.quick else 12, table_s, rounds)
            recovered = recovery(city, root, replay_s, args.seed, 1 if args.quick else 3)
    finally:
        ray.shutdown()
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python -m benchmarks.checkpoints" + (" --quick" if args.quick else ""),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "pyarrow": pa.__version__,
        "loadavg_start": [round(x, 2) for x in load],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    payload = {"meta": meta, "default_city_job": default, "throughput": cost, "recovery": recovered}
    (RESULTS / "checkpoints.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / "checkpoints.md").write_text(markdown(payload))
    print(markdown(payload))


def markdown(payload: dict[str, Any]) -> str:
    meta, default, cost, recovered = payload["meta"], payload["default_city_job"], payload["throughput"], payload["recovery"]
    lines = [
        "# Checkpoints: cost and recovery (Ray, this machine)",
        "",
        f"{meta['when']}, {meta['cpus']} CPUs, Python {meta['python']}, Ray {meta['ray']}, pyarrow {meta['pyarrow']}; "
        f"load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}. Command: `{meta['command']}`.",
        "",
        "## The default city job, a checkpoint every second",
        "",
        f"Replay of {default['replay_s']:g} s of the simulated city ({default['detections']:,} detections) in "
        f"{default['wall_s']} s; {default['checkpoints_completed']} checkpoints complete, "
        f"{default['checkpoints_given_up']} given up.",
        "",
        "| duration p50 | p90 | max | size of the last |",
        "|---:|---:|---:|---:|",
        f"| {default['duration_ms_p50']} ms | {default['duration_ms_p90']} ms | {default['duration_ms_max']} ms | "
        f"{default['size_bytes_last']:,} bytes |",
        "",
        "Duration: from the trigger of the sources to the manifest written (every task aligned, snapshotted, wrote its "
        "file and reported). Largest task states in the last checkpoint: "
        + ", ".join(f"{task} {size:,} B" for task, size in default["largest_tasks"])
        + ".",
        "",
        "## Throughput: checkpoints every second against none",
        "",
        f"The fusion job fed from a table of {cost['detections']:,} detections and {cost['readings']:,} readings (600 s "
        "of the simulated city generated beforehand, repeated later in time), "
        f"{cost['rounds']} alternating rounds; detections per second from the start of processing to the end.",
        "",
        "| checkpoints | runs (detections/s) | median |",
        "|---|---|---:|",
        f"| none | {', '.join(f'{v:,}' for v in cost['detections_per_s']['none'])} | {cost['median_none']:,} |",
        f"| every 1 s | {', '.join(f'{v:,}' for v in cost['detections_per_s']['every 1 s'])} | {cost['median_every_1s']:,} |",
        "",
        f"Cost: {cost['cost_percent']} % (checkpoints completed per run: {cost['checkpoints_per_run']}).",
        "",
        "## Recovery from a killed district actor",
        "",
        "| run | coordinator saw it | every task running again | district handling rows again | restored from |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(recovered, 1):
        lines.append(
            f"| {i} | {r['noticed_s']} s | {r['tasks_running_s']} s | {r['processing_again_s']} s "
            f"| checkpoint {r['from_checkpoint']} |"
        )
    lines += [
        "",
        "Times from the `ray.kill`. Recovery restarts every task of the job (about 20 actors) from the last complete "
        "checkpoint; creating the actors is most of it.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
