"""The city's streams as SQL tables (the ``city`` connector), and ``citystream sql`` /
``citystream explain FILE.sql``: run a SQL file against the simulated cameras and weather
stations of a topology (or against data files), printing results as they come."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa

from actors.topology import City
from engine.sources import Source
from operators.sql import Connectors, SourceConnector, SqlJob, TableDef
from operators.sql.compiler import as_named
from operators.sql.errors import SqlError

STREAMS = ("detections", "weather")


def city_connectors(city: City, *, mode: str = "replay", duration_s: float | None = 120.0, seed: int | None = None) -> Connectors:
    """Connectors with ``'connector' = 'city'``: ``'stream'`` is detections (the cameras, one
    task per camera group) or weather (the stations, one task each); ``'mode'``, ``'duration'``
    (seconds of the replay) and ``'seed'`` override the defaults given here."""
    connectors = Connectors()

    def make(table: TableDef, _: Connectors) -> Source:
        from actors.simulation import CameraFeed, WeatherFeed

        stream = table.options["stream"]
        run_mode = table.options.get("mode", mode)
        if run_mode not in ("replay", "live"):
            raise SqlError(f"table '{table.name}': 'mode' must be replay or live, not '{run_mode}'")
        duration = float(table.options["duration"]) if "duration" in table.options else duration_s
        run_seed = int(table.options["seed"]) if "seed" in table.options else seed
        feed = CameraFeed if stream == "detections" else WeatherFeed
        source: Source = feed(city, run_mode, duration if run_mode == "replay" else None, run_seed)  # type: ignore[arg-type]
        return _Declared(source, table)

    def partitions(table: TableDef) -> int:
        stream = table.options.get("stream", "")
        if stream not in STREAMS:
            raise SqlError(f"table '{table.name}': 'stream' must be one of {', '.join(STREAMS)}, not '{stream}'")
        return len(city.camera_groups()) if stream == "detections" else len(city.stations)

    connectors.register(
        SourceConnector(
            "city",
            make,
            {
                "stream": "detections (the cameras) or weather (the stations)",
                "mode": "replay (simulated time, as fast as it goes) or live (the clock)",
                "duration": "seconds of simulated time of a replay",
                "seed": "seed of the simulated feeds",
            },
            ("stream",),
            partitions=partitions,
        )
    )
    return connectors


class _Declared(Source):
    """A city feed seen through a table's declared columns (a subset of the feed's, by name)."""

    def __init__(self, source: Source, table: TableDef) -> None:
        self.source = source
        names = {n.lower(): n for n in source.schema.names}
        missing = [f.name for f in table.schema if f.name.lower() not in names]
        if missing:
            raise SqlError(
                f"table '{table.name}': the city's {table.options['stream']} have no column '{missing[0]}'; "
                f"they have {', '.join(source.schema.names)}"
            )
        self.columns = [names[f.name.lower()] for f in table.schema]
        self.table = table
        self.replayable = source.replayable  # the feed's place is the table's: only columns are dropped
        self.schema = pa.schema(
            [pa.field(f.name, source.schema.field(c).type) for f, c in zip(table.schema, self.columns, strict=True)]
        )
        for f, actual in zip(table.schema, self.schema, strict=True):
            if f.type != actual.type and not (pa.types.is_floating(f.type) and pa.types.is_floating(actual.type)):
                raise SqlError(f"table '{table.name}': column '{f.name}' is {actual.type} in the city's feed, not {f.type}")
        self.schema = table.schema

    def __copy__(self) -> _Declared:
        # Each task copies its source (engine.task): the feed inside must be copied too.
        twin = object.__new__(_Declared)
        twin.__dict__.update(self.__dict__)
        twin.source = copy.copy(self.source)
        return twin

    def open(self, partition: int, partitions: int) -> None:
        self.source.open(partition, partitions)

    def poll(self) -> Any:
        batch = self.source.poll()
        if not isinstance(batch, pa.RecordBatch):
            return batch
        return pa.RecordBatch.from_arrays([batch.column(c) for c in self.columns], schema=self.schema)

    def snapshot(self) -> Any:
        return self.source.snapshot()

    def restore(self, state: Any) -> None:
        self.source.restore(state)

    def on_commit(self, checkpoint_id: int, state: Any) -> None:
        self.source.on_commit(checkpoint_id, state)

    def close(self) -> None:
        self.source.close()


class RowPrinter:
    """Prints each output's rows as they arrive, one line per row (the CLI's view)."""

    def __init__(self, job: Callable[[], SqlJob | None], out: TextIO | None = None) -> None:
        self.job = job
        self.out = out or sys.stdout
        self.rows: dict[str, int] = {}
        self.headers: set[str] = set()

    def sink_for(self, name: str) -> Callable[[pa.RecordBatch], None]:
        return lambda batch: self.print(name, pa.Table.from_batches([batch]))

    def print(self, name: str, table: pa.Table) -> None:
        job = self.job()
        if job is None or table.num_rows == 0:
            return
        shown = as_named(job.outputs[name], table)
        if name not in self.headers:
            self.headers.add(name)
            print(f"[{name}] " + " | ".join(shown.column_names), file=self.out, flush=True)
        # By position: a query may name two columns alike (a.x, b.x).
        columns = [c.to_pylist() for c in shown.columns]
        for row in zip(*columns, strict=True):
            print(f"[{name}] " + " | ".join(_format(v) for v in row), file=self.out, flush=True)
        self.rows[name] = self.rows.get(name, 0) + table.num_rows


def _format(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def run_sql_file(
    path: Path,
    city: City,
    *,
    executor: str = "inline",
    mode: str = "replay",
    duration_s: float | None = 120.0,
    seed: int | None = None,
    files: dict[str, Path] | None = None,
    parallelism: int = 1,
    explain_only: bool = False,
    out: TextIO | None = None,
) -> int:
    """What ``citystream sql`` and ``citystream explain FILE.sql`` do; returns the exit code."""
    out = out or sys.stdout
    from operators.sql import compile_sql_file

    compiled: dict[str, SqlJob] = {}
    printer = RowPrinter(lambda: compiled.get("job"), out)
    connectors = city_connectors(city, mode=mode, duration_s=duration_s, seed=seed)
    connectors.files.update({k.lower(): v for k, v in (files or {}).items()})
    if executor == "inline" and not explain_only:
        connectors.on_batch = printer.sink_for
    job = compile_sql_file(path, connectors=connectors, parallelism=parallelism)
    compiled["job"] = job
    if explain_only:
        print(job.explain(), file=out)
        return 0
    started = time.monotonic()
    if executor == "inline":
        from engine import InlineExecutor

        result = InlineExecutor().run(job.flow)
    else:
        result = _run_on_ray(job, printer)
    elapsed = time.monotonic() - started
    counts = ", ".join(f"{name}: {printer.rows.get(name, 0)} rows" for name in job.outputs)
    print(f"-- {counts} in {elapsed:.1f} s ({executor} executor)", file=out)
    for label, rows in sorted(result.unconsumed().items()):
        print(f"-- {label}: {rows} rows (not read by the query)", file=out)
    return 0


def _run_on_ray(job: SqlJob, printer: RowPrinter) -> Any:
    """Runs on Ray, printing what the collect sinks hold as it grows (every half second)."""
    from engine import RayExecutor

    with RayExecutor() as executor:
        handle = executor.submit(job.flow)
        shown: dict[tuple[str, int], int] = {}
        while True:
            try:
                result = handle.wait(timeout=0.5)
                _print_new(printer, result.outputs, shown)
                return result
            except TimeoutError:
                _print_new(printer, handle.peek(), shown)
            except KeyboardInterrupt:
                return handle.stop(timeout=60)


def _print_new(printer: RowPrinter, outputs: dict[str, list[Any]], shown: dict[tuple[str, int], int]) -> None:
    job = printer.job()
    for name, parts in outputs.items():
        if job is None or name not in job.outputs:
            continue
        for task, table in enumerate(parts):
            seen = shown.get((name, task), 0)
            if isinstance(table, pa.Table) and table.num_rows > seen:
                printer.print(name, table.slice(seen))
                shown[(name, task)] = table.num_rows
