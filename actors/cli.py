"""The ``citystream`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from engine import ChannelOptions, InlineExecutor, JobResult, build_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citystream", description="Real-time stream processing for city operations centers.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the main job")
    run.add_argument("--rows", type=int, default=200_000, help="detections to generate (default 200000)")
    run.add_argument("--parallelism", type=int, default=1)
    run.add_argument("--executor", choices=["ray", "inline"], default="ray", help="ray: one actor per task (default)")
    run.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    run.add_argument("--credits", type=int, default=8, help="frames in flight per channel")
    run.add_argument("--batch-rows", type=int, default=10_000, help="rows per frame")
    run.add_argument("--linger-ms", type=float, default=5.0, help="longest wait of a frame that is not full")
    explain = commands.add_parser("explain", help="print the physical plan of the main job")
    explain.add_argument("--parallelism", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from actors.demo import fusion_flow, summarize

    if args.command == "explain":
        print(build_plan(fusion_flow(rows=1_000, parallelism=args.parallelism)).explain())
        return 0
    flow = fusion_flow(rows=args.rows, parallelism=args.parallelism)
    print(build_plan(flow).explain())
    started = time.perf_counter()
    if args.executor == "inline":
        result = InlineExecutor().run(flow)
    else:
        from engine import RayExecutor

        channels = ChannelOptions(credits=args.credits, batch_rows=args.batch_rows, linger_ms=args.linger_ms)
        with RayExecutor(args.address, channels=channels) as executor:
            started = time.perf_counter()  # without Ray's own start-up
            result = executor.run(flow)
    elapsed = time.perf_counter() - started
    counts = result.table("camera_counts")
    print(f"\n{args.rows} detections in {elapsed:.2f} s ({args.rows / elapsed:,.0f} rows/s, {args.executor} executor)")
    print(f"{counts.num_rows} per-camera windows during yellow dust; refused rows: {result.table('refused').num_rows}")
    print(summarize(counts))
    print(metrics_table(result))
    return 0


def metrics_table(result: JobResult) -> str:
    """One line per task: rows in and out, frames, time waiting for credits, latency."""
    lines = [
        f"\n{'task':<28} {'rows in':>10} {'rows out':>10} {'frames in/out':>14} {'backpressure':>12} {'hop p50/p99 ms':>15}"
    ]
    for name, m in result.metrics.items():
        latency = sorted(m.hop_latency_ms)
        hop = f"{latency[len(latency) // 2]:.2f}/{latency[int(len(latency) * 0.99)]:.2f}" if latency else "-"
        lines.append(
            f"{name:<28} {m.rows_in:>10,} {sum(m.rows_out.values()):>10,} {f'{m.frames_in}/{m.frames_out}':>14}"
            f" {m.backpressure_s:>11.2f}s {hop:>15}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
