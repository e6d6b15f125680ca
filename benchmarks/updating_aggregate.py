"""Cost of a watermark in the updating (non-windowed) GROUP BY as its state grows.

Each watermark brings ``--changes`` keys: first only new keys (the state grows to ``--keys``),
then updates of random existing keys. The figure is the time of ``on_watermark`` (merge the
changes with the keys' earlier partials, emit the changelog), which should depend on the
changes, not on the keys in state. Run: ``python -m benchmarks.updating_aggregate``; figures
go to benchmarks/results/updating_aggregate.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.operator import Collector
from operators.group import UpdatingAggregate, updating_schema
from operators.window.aggregates import Agg, TwoPhaseAggregate

RESULTS = Path(__file__).parent / "results"
SCHEMA = pa.schema([("ts", pa.timestamp("ms", "UTC")), ("k", pa.int64()), ("v", pa.int64())])


def _batch(keys: np.ndarray, step: int) -> pa.RecordBatch:
    times = pa.array(np.full(len(keys), step, dtype=np.int64)).cast(SCHEMA.field("ts").type)
    return pa.record_batch([times, pa.array(keys), pa.array(keys % 7)], schema=SCHEMA)


def run(keys: int, changes: int, seed: int = 1) -> list[dict]:
    aggregate = TwoPhaseAggregate(
        "bench", [Agg("count", None, "n"), Agg("sum", "v", "total"), Agg("count_distinct", "v", "kinds")], SCHEMA, "ts"
    )
    op = UpdatingAggregate(["k"], aggregate, None, updating_schema([SCHEMA.field("k")], aggregate.output_fields))
    emitted: list[pa.RecordBatch] = []
    out = Collector({"main": emitted.append})
    rng = np.random.default_rng(seed)
    growing = keys // changes
    rows, times = [], []
    for step in range(2 * growing):
        new = step < growing
        batch_keys = np.arange(step * changes, (step + 1) * changes) if new else rng.integers(0, keys, changes)
        op.process_batch(_batch(batch_keys, step), 0, out)
        started = time.perf_counter()
        op.on_watermark(step, out)
        times.append((time.perf_counter() - started) * 1000)
        emitted.clear()
        if (step + 1) % max(growing // 4, 1) == 0:
            rows.append(
                {
                    "phase": "new keys" if new else "updates",
                    "watermark": step + 1,
                    "keys_in_state": sum(s.live for s in op.segments),
                    "segments": len(op.segments),
                    "median_ms": round(statistics.median(times), 3),
                    "max_ms": round(max(times), 3),
                }
            )
            times = []
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--changes", type=int, default=1_000, help="keys changed per watermark")
    args = parser.parse_args()
    load = os.getloadavg()
    rows = run(args.keys, args.changes)
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": f"python -m benchmarks.updating_aggregate --keys {args.keys} --changes {args.changes}",
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "loadavg_start": [round(x, 2) for x in load],
        "aggregates": "count(*), sum(v), count(DISTINCT v) per key",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "updating_aggregate.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = [
        "# Updating GROUP BY: time of a watermark as the state grows",
        "",
        f"{meta['when']}, Python {meta['python']}, pyarrow {meta['pyarrow']}; load average at start {meta['loadavg_start']}.",
        f"Command: `{meta['command']}`; {meta['aggregates']}; {args.changes:,} keys change per watermark.",
        "",
        "| phase | watermarks | keys in state | segments | median ms per watermark | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['phase']} | {r['watermark']} | {r['keys_in_state']:,} | {r['segments']} | {r['median_ms']} | {r['max_ms']} |"
        for r in rows
    ]
    lines.append("")
    lines.append("Each row: the watermarks since the previous row. The max includes the merges of segments.")
    (RESULTS / "updating_aggregate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
