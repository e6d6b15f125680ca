"""Runs one workload on PyFlink (Table API / SQL, local mini-cluster, streaming mode, parallelism 1)
and writes a JSON report.

Runs only in the PyFlink venv (benchmarks/peers/.venvs/pyflink): ``python pyflink_job.py
--workload q1 --data DIR --out DIR --report FILE``. Input: the CSV copies of the run's data (the
pip package of PyFlink bundles the CSV and JSON formats but not Parquet, ORC or Arrow), read with
the filesystem connector; times are epoch-ms BIGINT columns turned into TIMESTAMP_LTZ(3) rowtime
attributes with a watermark 1 ms behind the latest time (the input is in order; the 1 ms keeps
rows of the same millisecond on time, as Flink's BoundedOutOfOrderness does). Output: headerless
CSV part files written by the filesystem sink into the ``--out`` folder. The job's start is when
``execute_sql`` has returned (the plan made, the local cluster started, the job submitted): the JVM,
planning and the cluster are start-up. Time to first result is
when the first output bytes reach that folder (polled every 10 ms): the file writer buffers, so it
is an upper bound. Self-contained: it cannot import citystream (another venv).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pyflink.table import EnvironmentSettings, TableEnvironment

BID = """
CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, dateTime_ms BIGINT, extra STRING,
  `dateTime` AS TO_TIMESTAMP_LTZ(dateTime_ms, 3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '0.001' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""
DETECTIONS = """
CREATE TABLE detections (
  ts_ms BIGINT, camera STRING, district STRING, track_id BIGINT, label STRING, confidence DOUBLE, x DOUBLE, y DOUBLE,
  ts AS TO_TIMESTAMP_LTZ(ts_ms, 3),
  WATERMARK FOR ts AS ts - INTERVAL '0.001' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""
WEATHER = """
CREATE TABLE weather (
  ts_ms BIGINT, station STRING, district STRING, temperature DOUBLE, wind_speed DOUBLE, pm10 DOUBLE, precipitation DOUBLE,
  ts AS TO_TIMESTAMP_LTZ(ts_ms, 3),
  WATERMARK FOR ts AS ts - INTERVAL '0.001' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""
# The latest reading per district as a versioned view (deduplication on the rowtime), which an
# event-time temporal join can look up "as of" the detection's time.
WEATHER_VERSIONS = """
CREATE VIEW weather_versions AS
SELECT district, pm10, ts FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY district ORDER BY ts DESC) AS row_num FROM weather
) WHERE row_num = 1
"""
FUSED = """
CREATE VIEW fused AS
SELECT d.camera, d.ts, w.pm10
FROM detections AS d
LEFT JOIN weather_versions FOR SYSTEM_TIME AS OF d.ts AS w ON d.district = w.district
"""

SINKS = {
    "q1": "auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), `dateTime` BIGINT, extra STRING",
    "q2": "auction BIGINT, price BIGINT",
    "tumbling": "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT",
    "hopping": "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT",
    "fusion": "camera STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT, max_pm10 DOUBLE",
}
QUERIES = {
    "q1": "SELECT auction, bidder, 0.908 * price, dateTime_ms, extra FROM bid",
    "q2": "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
    "tumbling": """
        SELECT auction, window_start, window_end, COUNT(*)
        FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end""",
    "hopping": """
        SELECT auction, window_start, window_end, COUNT(*)
        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end""",
    "fusion": """
        SELECT camera, window_start, window_end, COUNT(*), MAX(pm10)
        FROM TABLE(TUMBLE(TABLE fused, DESCRIPTOR(ts), INTERVAL '10' SECOND))
        GROUP BY camera, window_start, window_end""",
}


def _first_output(folder: Path, found: dict[str, float], done: threading.Event) -> None:
    while not done.is_set():
        for root, _, names in os.walk(folder):
            for name in names:
                try:
                    if os.path.getsize(os.path.join(root, name)) > 0 and not name.endswith(".crc"):
                        found["first_result"] = time.time()
                        return
                except OSError:
                    pass
        done.wait(0.01)


def statements(workload: str, data: Path, out: Path) -> list[str]:
    """The DDL and the INSERT of ``workload`` (the INSERT last)."""
    ddl: list[str] = []
    if workload == "fusion":
        ddl += [
            DETECTIONS.format(path=data / "detections.csv"),
            WEATHER.format(path=data / "weather.csv"),
            WEATHER_VERSIONS,
            FUSED,
        ]
    else:
        ddl.append(BID.format(path=data / "bids.csv"))
    ddl.append(f"CREATE TABLE out_rows ({SINKS[workload]}) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')")
    return [*ddl, f"INSERT INTO out_rows {QUERIES[workload]}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True, choices=sorted(QUERIES))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--explain", action="store_true", help="print the plan of the INSERT and stop")
    args = parser.parse_args()
    imported = time.time()
    settings = EnvironmentSettings.in_streaming_mode()
    env = TableEnvironment.create(settings)
    config = env.get_config()
    config.set("parallelism.default", str(args.parallelism))
    config.set("table.exec.resource.default-parallelism", str(args.parallelism))
    config.set("table.local-time-zone", "UTC")
    env_ready = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    *ddl, insert = statements(args.workload, args.data.resolve(), args.out.resolve())
    for statement in ddl:
        env.execute_sql(statement)
    if args.explain:
        print(env.explain_sql(insert))
        return
    found: dict[str, float] = {}
    done = threading.Event()
    watcher = threading.Thread(target=_first_output, args=(args.out, found, done), daemon=True)
    planned = time.time()
    watcher.start()
    result = env.execute_sql(insert)  # plans, starts the local cluster and submits the job
    job_start = time.time()
    result.wait()
    job_end = time.time()
    done.set()
    import pyflink

    report: dict[str, Any] = {
        "engine": "pyflink",
        "workload": args.workload,
        "imported": imported,
        "env_ready": env_ready,
        "planned": planned,
        "job_start": job_start,
        "first_result": found.get("first_result"),
        "job_end": job_end,
        "version": getattr(pyflink, "__version__", None),
        "python": sys.version.split()[0],
    }
    args.report.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
