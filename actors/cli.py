"""The ``citystream`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from engine import InlineExecutor, build_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citystream", description="Real-time stream processing for city operations centers.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the main job")
    run.add_argument("--rows", type=int, default=200_000, help="detections to generate (default 200000)")
    run.add_argument("--parallelism", type=int, default=1)
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
    result = InlineExecutor().run(flow)
    elapsed = time.perf_counter() - started
    counts = result.table("camera_counts")
    print(f"\n{args.rows} detections in {elapsed:.2f} s ({args.rows / elapsed:,.0f} rows/s, inline executor)")
    print(f"{counts.num_rows} per-camera windows during yellow dust; refused rows: {result.table('refused').num_rows}")
    print(summarize(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
