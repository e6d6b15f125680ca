"""Runs one workload on citystream (inline or Ray executor) and writes a JSON report of its timings.

Run by benchmarks/peers/run.py: ``python -m benchmarks.peers.runners.citystream_job --workload q1
--data DIR --out FILE --report FILE [--executor inline|ray]``. The output is an Arrow IPC stream
file; the report has the wall-clock times (epoch seconds) of the job's start, first result and end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.peers.workloads import WORKLOADS, DataFiles, IpcFileSink, citystream_flow, events_of, file_sources


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--executor", choices=("inline", "ray"), default="inline")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here (inline only)")
    args = parser.parse_args(argv)
    imported = time.time()
    files = DataFiles(args.data)
    flow, results = citystream_flow(args.workload, file_sources(files))
    out_path = str(args.out)
    sink = results.sink_each(lambda: IpcFileSink(out_path), name="out", parallelism=1)
    report: dict[str, Any] = {"engine": f"citystream-{args.executor}", "workload": args.workload, "imported": imported}
    if args.executor == "inline":
        from engine import InlineExecutor

        executor = InlineExecutor()
        report["job_start"] = time.time()
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(executor.run, flow)
            profiler.dump_stats(str(args.profile))
        else:
            result = executor.run(flow)
        report["job_end"] = time.time()
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import ray

        from engine import RayExecutor

        ray.init(include_dashboard=False, log_to_driver=False)
        # The job starts with the actors' creation (submit returns once they run, and they may
        # have processed rows by then); only ray.init is start-up.
        report["job_start"] = time.time()
        job = RayExecutor().submit(flow)
        report["actors_running"] = time.time()
        result = job.wait(timeout=3600)
        report["job_end"] = time.time()
        ray.shutdown()
    sink_results = [r for r in result.outputs.get(sink, []) if isinstance(r, dict)]
    firsts = [r["first_result"] for r in sink_results if r.get("first_result") is not None]
    report["first_result"] = min(firsts) if firsts else None
    report["rows_out"] = sum(r["rows"] for r in sink_results)
    report["events"] = events_of(args.workload, files.manifest()["rows"])
    report["late_rows"] = sum(rows for label, rows in result.unconsumed().items() if "late" in label)
    report["python"] = sys.version.split()[0]
    args.report.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
