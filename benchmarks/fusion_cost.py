"""CPU time per detection of the city job's per-row work, in one process (no Ray).

Two measurements on the detections and readings of a replay generated beforehand (600 s of
the simulated city, seed 7, repeated later in time as in ``benchmarks/checkpoints.py``):

1. ``fusion``: what a camera task and a district task do per row, called directly: the
   source-side validation (``EventTimeAssigner`` with ``detection_checks`` /
   ``reading_checks``) on 10k-row detection batches and 50-row reading batches, the split by
   district, and ``DistrictFusion`` (as-of join, rules, dust window, incidents) per district,
   with a watermark after every detection batch.
2. ``inline job``: the whole fusion job (``benchmarks.checkpoints.fusion_flow``) on the
   inline executor, engine and gateways included.

Detections go in time order (``--order time``, as a district sees them in the city job, whose
watermark is the minimum over every camera task), not partition after partition as
``replay_tables`` gives them: fed that way, most rows of the later camera groups are late.

Each is run ``--rounds`` times (median reported); ``--profile`` adds the cProfile top entries
of one ``fusion`` run. Run: ``python -m benchmarks.fusion_cost [--label after]``; figures go to
benchmarks/results/fusion_cost.{json,md}, one entry per label.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from actors.city import detection_checks, reading_checks
from actors.district import DistrictFusion
from actors.simulation import replay_tables
from actors.topology import City, load_city
from benchmarks.checkpoints import fusion_flow
from engine import InlineExecutor
from engine.operator import DEAD_LETTER, LATE, MAIN, Collector
from engine.partitioning import Hash
from engine.sources import EventTimeAssigner
from engine.timeutil import MAX_WATERMARK, MIN_WATERMARK

RESULTS = Path(__file__).parent / "results"


def _shifted(batches: list[pa.RecordBatch], shift_ms: int) -> list[pa.RecordBatch]:
    if shift_ms == 0:
        return batches
    out = []
    for batch in batches:
        index = batch.schema.get_field_index("ts")
        field = batch.schema.field(index)
        moved = pc.add(batch.column(index).cast(pa.int64()), shift_ms).cast(field.type)
        out.append(batch.set_column(index, field, moved))
    return out


def fusion_run(city: City, detections: pa.Table, readings: pa.Table, times: int, span_s: float) -> dict[str, int]:
    """Validation, split and DistrictFusion over ``times`` copies of the tables; returns counts
    (the input is shifted before the clock starts: only the per-row work is timed)."""
    out_of_orderness = city.simulation.out_of_orderness_ms
    cameras = EventTimeAssigner("ts", out_of_orderness, None, detection_checks(city))
    stations = EventTimeAssigner("ts", out_of_orderness, None, reading_checks(city))
    districts = city.district_ids()
    placement = tuple((d, i) for i, d in enumerate(districts))
    split = Hash(("district",), placement)
    fusions = [DistrictFusion(city) for _ in districts]
    counts = {"incidents": 0, "late": 0, "refused": 0}

    def count(name: str) -> Any:
        return lambda batch: counts.__setitem__(name, counts[name] + batch.num_rows)

    fusion_out = Collector({MAIN: count("incidents"), LATE: count("late")})
    validated: list[pa.RecordBatch] = []
    source_out = Collector({MAIN: validated.append, DEAD_LETTER: count("refused")})
    det_batches = detections.combine_chunks().to_batches(max_chunksize=10_000)
    read_batches = readings.combine_chunks().to_batches(max_chunksize=50)
    span_ms = int(span_s * 1000)
    copies = [(_shifted(det_batches, c * span_ms), _shifted(read_batches, c * span_ms)) for c in range(times)]
    started = time.process_time()
    reading_watermark = MIN_WATERMARK
    district_watermark = MIN_WATERMARK
    for dets, reads in copies:
        pending_reads = list(reads)
        for batch in dets:
            batch_end = pc.max(batch.column("ts")).value
            # Readings go first, until they are ahead of this batch (their source runs ahead of
            # the cameras): the cameras' watermark then leads, after every batch, as on Ray.
            while pending_reads and reading_watermark < batch_end:
                stations.process_batch(pending_reads.pop(0), 0, source_out)
                for part, rows in zip(fusions, split.split(validated.pop(), len(districts)), strict=True):
                    if rows.num_rows:
                        part.process_batch(rows, 1, fusion_out)
                watermark = stations.take_watermark()
                reading_watermark = watermark if watermark is not None else reading_watermark
            cameras.process_batch(batch, 0, source_out)
            for part, rows in zip(fusions, split.split(validated.pop(), len(districts)), strict=True):
                if rows.num_rows:
                    part.process_batch(rows, 0, fusion_out)
            watermark = min(cameras.generator.current, reading_watermark)
            if watermark > district_watermark:
                district_watermark = watermark
                for part in fusions:
                    part.on_watermark(watermark, fusion_out)
    for part in fusions:
        part.on_watermark(MAX_WATERMARK, fusion_out)
    counts["cpu_s"] = time.process_time() - started  # type: ignore[assignment]
    return counts


def inline_job_run(city: City, detections: pa.Table, readings: pa.Table, times: int, span_s: float) -> dict[str, Any]:
    started = time.process_time()
    result = InlineExecutor().run(fusion_flow(city, detections, readings, times, span_s))
    return {"cpu_s": time.process_time() - started, "incidents": result.table("gateways").num_rows}


def profile_top(city: City, detections: pa.Table, readings: pa.Table, times: int, span_s: float, top: int) -> dict[str, str]:
    profiler = cProfile.Profile()
    profiler.enable()
    fusion_run(city, detections, readings, times, span_s)
    profiler.disable()
    texts = {}
    for order in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(top)
        texts[order] = stream.getvalue()
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="name of this entry in the results (before, after...)")
    parser.add_argument("--times", type=int, default=4, help="copies of the 600 s replay")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--order",
        choices=["time", "partition"],
        default="time",
        help="detections in time order (as a district sees them) or partition after partition, as replay_tables "
        "gives them (then most rows of the later camera groups are late)",
    )
    args = parser.parse_args()
    span_s = 600.0
    city = load_city()
    detections, readings = replay_tables(city, span_s, args.seed)
    if args.order == "time":
        detections = detections.sort_by([("ts", "ascending")])
    n = detections.num_rows * args.times
    load = os.getloadavg()
    fusion = [fusion_run(city, detections, readings, args.times, span_s) for _ in range(args.rounds)]
    job = [inline_job_run(city, detections, readings, args.times, span_s) for _ in range(args.rounds)]
    entry: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": f"python -m benchmarks.fusion_cost --label {args.label} --times {args.times} --rounds {args.rounds} "
        f"--order {args.order}" + (" --profile" if args.profile else ""),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "detections": n,
        "fusion_us_per_detection": [round(r["cpu_s"] / n * 1e6, 3) for r in fusion],
        "fusion_median_us": round(statistics.median(r["cpu_s"] for r in fusion) / n * 1e6, 3),
        "fusion_incidents": fusion[0]["incidents"],
        "fusion_late": fusion[0]["late"],
        "inline_job_us_per_detection": [round(r["cpu_s"] / n * 1e6, 3) for r in job],
        "inline_job_median_us": round(statistics.median(r["cpu_s"] for r in job) / n * 1e6, 3),
        "inline_job_incidents": job[0]["incidents"],
    }
    if args.profile:
        entry["profile"] = profile_top(city, detections, readings, args.times, span_s, 25)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "fusion_cost.json"
    payload = json.loads(path.read_text()) if path.exists() else {}
    payload[args.label] = entry
    path.write_text(json.dumps(payload, indent=2))
    (RESULTS / "fusion_cost.md").write_text(markdown(payload))
    print(markdown({args.label: entry}))
    if args.profile:
        print(entry["profile"]["tottime"])
        print(entry["profile"]["cumulative"])


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# CPU time per detection of the fusion job's per-row work (one process, no Ray)",
        "",
        "CPU time (process_time) over the detections and readings of 600 s of the simulated city (seed 7), "
        "repeated later in time. `fusion`: validation + split by district + DistrictFusion called directly; "
        "`inline job`: the whole fusion job on the inline executor (engine and gateways included).",
        "",
        "| label | when | load average (start) | detections (late) | fusion µs/detection (runs) | median "
        "| inline job µs/detection (runs) | median | incidents |",
        "|---|---|---|---:|---|---:|---|---:|---:|",
    ]
    for label, e in payload.items():
        lines.append(
            f"| {label} | {e['when']} | {e['loadavg_start']} | {e['detections']:,} ({e['fusion_late']:,}) | "
            f"{', '.join(str(v) for v in e['fusion_us_per_detection'])} | {e['fusion_median_us']} | "
            f"{', '.join(str(v) for v in e['inline_job_us_per_detection'])} | {e['inline_job_median_us']} | "
            f"{e['fusion_incidents']} / {e['inline_job_incidents']} |"
        )
    for label, e in payload.items():
        if "profile" in e:
            top = e["profile"]["tottime"].strip()
            lines += ["", f"## cProfile of one fusion run ({label}), by own time", "", "```", top, "```"]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
