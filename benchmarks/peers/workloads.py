"""The peer comparison's workloads: their data (generated once per run, seeded, written to files
every engine reads), citystream's implementation of each, and the canonical form and
order-independent checksum that the outputs of all engines are compared by.

Workloads (bids from the Nexmark generator; detections and weather from actors/synthetic.py):

* ``q1``: every bid with its price in euros (``price * 0.908``), Nexmark q1.
* ``q2``: the bids of every 123rd auction (``auction % 123 == 0``), Nexmark q2 as
  benchmarks/nexmark/queries/q2.sql defines it.
* ``tumbling``: bids per auction per 10 s tumbling event-time window.
* ``hopping``: bids per auction per 10 s window sliding by 2 s.
* ``fusion``: each detection as-of joined with the latest weather reading of its district (at
  or before the detection's time), then per camera and 10 s tumbling window the count of
  detections and the highest PM10 they were joined with.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from engine import Collector, Dataflow, Sink, Stream, call, col
from engine.sources import END_OF_INPUT, EndOfInput, Source
from operators import Hopping, Tumbling, agg

WORKLOADS = ("q1", "q2", "tumbling", "hopping", "fusion")
WINDOW_MS = 10_000
SLIDE_MS = 2_000
EURO_RATE = 0.908
Q2_MODULUS = 123

# The canonical output of each workload: (column, kind). Kinds: "int" (an integer), "ms" (a time
# as epoch milliseconds), "milli" (a decimal number as round(value * 1000)), "str".
CANONICAL: dict[str, list[tuple[str, str]]] = {
    "q1": [("auction", "int"), ("bidder", "int"), ("price", "milli"), ("dateTime", "ms"), ("extra", "str")],
    "q2": [("auction", "int"), ("price", "int")],
    "tumbling": [("auction", "int"), ("window_start", "ms"), ("window_end", "ms"), ("count", "int")],
    "hopping": [("auction", "int"), ("window_start", "ms"), ("window_end", "ms"), ("count", "int")],
    "fusion": [("camera", "str"), ("window_start", "ms"), ("window_end", "ms"), ("count", "int"), ("max_pm10", "milli")],
}


@dataclass(frozen=True)
class DataSpec:
    """How much data a run generates, and from which seed."""

    nexmark_events: int  # all Nexmark events; about 92 % of them are bids
    detections: int
    seed: int = 42
    detection_rate_per_s: float = 10_000.0
    cameras: int = 120
    weather_every_ms: int = 1_000


@dataclass(frozen=True)
class DataFiles:
    """The generated files: Arrow IPC files (citystream, Bytewax) and CSV copies (PyFlink)."""

    root: Path

    def arrow(self, name: str) -> Path:
        return self.root / f"{name}.arrow"

    def csv(self, name: str) -> Path:
        return self.root / f"{name}.csv"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.manifest_path.read_text())
        return result


def input_tables(spec: DataSpec) -> dict[str, pa.Table]:
    """The bids, detections and weather readings of ``spec``, generated from its seed."""
    # Imported here: the engines' jobs read the files and need neither generator.
    from actors import synthetic
    from benchmarks.nexmark.generator import NexmarkConfig, nexmark_tables

    bids = nexmark_tables(NexmarkConfig(events=spec.nexmark_events, seed=spec.seed))["bid"]
    start_ms = NexmarkConfig.base_time_ms
    detections = synthetic.detections(
        spec.detections, start_ms=start_ms, rate_per_s=spec.detection_rate_per_s, cameras=spec.cameras, seed=spec.seed
    )
    # One station per district: with two, a detection would have two readings of the same time
    # to choose from, and engines break such ties differently.
    span_ms = int(spec.detections * 1000 / spec.detection_rate_per_s) + spec.weather_every_ms
    weather = synthetic.weather(
        span_ms, start_ms=start_ms, every_ms=spec.weather_every_ms, stations_per_district=1, seed=spec.seed
    )
    return {"bids": bids.combine_chunks(), "detections": detections.combine_chunks(), "weather": weather.combine_chunks()}


def _csv_copy(table: pa.Table) -> pa.Table:
    """The table with its timestamps as epoch-ms integers (what PyFlink's CSV reading declares)."""
    columns = [pc.cast(column, pa.int64()) if pa.types.is_timestamp(column.type) else column for column in table.itercolumns()]
    return pa.table(columns, names=table.column_names)


def table_digest(table: pa.Table) -> str:
    """A digest of a table's content in its order (for checking that generation is deterministic)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def write_data(spec: DataSpec, root: Path, batch_size: int = 10_000) -> DataFiles:
    """Generates the data of ``spec`` into ``root`` (kept if a manifest of the same spec is there)."""
    files = DataFiles(root)
    if files.manifest_path.exists() and files.manifest().get("spec") == asdict(spec):
        return files
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"spec": asdict(spec), "rows": {}, "digests": {}}
    for name, table in input_tables(spec).items():
        with pa.OSFile(str(files.arrow(name)), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=batch_size):
                writer.write_batch(batch)
        pacsv.write_csv(_csv_copy(table), str(files.csv(name)), pacsv.WriteOptions(include_header=False))
        manifest["rows"][name] = table.num_rows
        manifest["digests"][name] = table_digest(table)
    files.manifest_path.write_text(json.dumps(manifest, indent=2))
    return files


def events_of(workload: str, rows: dict[str, int]) -> int:
    """Events a workload reads: the bids, or the detections and the readings."""
    return rows["detections"] + rows["weather"] if workload == "fusion" else rows["bids"]


# ---------------------------------------------------------------------------------------------
# citystream's side


class ArrowFileSource(Source):
    """The record batches of an Arrow IPC file, memory-mapped when the source is opened (so that
    on Ray each task reads the file itself rather than receiving the table)."""

    replayable = True

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with pa.memory_map(self.path) as source:
            self.schema = pa.ipc.open_file(source).schema
        self._reader: pa.ipc.RecordBatchFileReader | None = None
        self._index = 0
        self._step = 1

    def open(self, partition: int, partitions: int) -> None:
        self._reader = pa.ipc.open_file(pa.memory_map(self.path))
        self._index, self._step = partition, partitions

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        if self._reader is None:
            self.open(0, 1)
        assert self._reader is not None
        if self._index >= self._reader.num_record_batches:
            return END_OF_INPUT
        batch = self._reader.get_batch(self._index)
        self._index += self._step
        return batch

    def snapshot(self) -> Any:
        return self._index

    def restore(self, state: Any) -> None:
        self._index = int(state)


SourceOf = Callable[[Dataflow, str, str], Stream]  # (flow, name, event-time column) -> stream


def file_sources(files: DataFiles) -> SourceOf:
    """Streams over the generated Arrow files (``name`` is bids, detections or weather)."""
    return lambda flow, name, event_time: flow.source(name, ArrowFileSource(files.arrow(name)), event_time)


def table_sources(tables: dict[str, pa.Table], batch_size: int = 10_000) -> SourceOf:
    """Streams over in-memory tables (tests)."""
    return lambda flow, name, event_time: flow.from_table(name, tables[name], event_time, batch_size=batch_size)


def citystream_flow(workload: str, source_of: SourceOf) -> tuple[Dataflow, Stream]:
    """citystream's job for ``workload`` and the stream of its results (the caller adds the sink)."""
    flow = Dataflow(f"peers_{workload}")
    if workload == "fusion":
        detections = source_of(flow, "detections", "ts")
        weather = source_of(flow, "weather", "ts")
        fused = detections.key_by("district").asof_join(weather.key_by("district"))
        out = fused.key_by("camera").window(
            Tumbling(timedelta(milliseconds=WINDOW_MS)), [agg("count"), agg("max", "pm10", "max_pm10")]
        )
        return flow, out
    bids = source_of(flow, "bids", "dateTime")
    if workload == "q1":
        out = bids.select("auction", "bidder", "dateTime", "extra", price=col("price") * EURO_RATE)
    elif workload == "q2":
        out = bids.filter(call("modulo", col("auction"), Q2_MODULUS) == 0).select("auction", "price", "dateTime")
    elif workload == "tumbling":
        out = bids.key_by("auction").window(Tumbling(timedelta(milliseconds=WINDOW_MS)), [agg("count")])
    elif workload == "hopping":
        spec = Hopping(timedelta(milliseconds=WINDOW_MS), timedelta(milliseconds=SLIDE_MS))
        out = bids.key_by("auction").window(spec, [agg("count")])
    else:
        raise ValueError(f"unknown workload '{workload}'; workloads: {', '.join(WORKLOADS)}")
    return flow, out


class IpcFileSink(Sink):
    """Writes every batch to an Arrow IPC stream file and remembers when the first row came
    (``result()``: the wall-clock time of the first row, or None, and the rows written)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.first_result: float | None = None
        self.rows = 0
        self._file: pa.OSFile | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if not batch.num_rows:
            return
        if self._writer is None:
            self.first_result = time.time()
            self._file = pa.OSFile(self.path, "wb")
            self._writer = pa.ipc.new_stream(self._file, batch.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        if self._writer is not None and self._file is not None:
            self._writer.close()
            self._file.close()
            self._writer = self._file = None

    def result(self) -> Any:
        self.close()
        return {"first_result": self.first_result, "rows": self.rows}


# ---------------------------------------------------------------------------------------------
# Canonical outputs and checksums


def _as_int64(column: pa.ChunkedArray | pa.Array, kind: str) -> pa.Array:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if kind == "ms":
        if pa.types.is_timestamp(column.type):
            return pc.cast(pc.cast(column, pa.timestamp("ms", "UTC")), pa.int64())
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:  # epoch ms written as text
                return pc.cast(column, pa.int64())
            except pa.ArrowInvalid:  # 'YYYY-MM-DD HH:MM:SS[.fff]' in UTC (PyFlink's CSV of a TIMESTAMP)
                return pc.cast(pc.cast(column, pa.timestamp("ms")), pa.int64())
        return pc.cast(column, pa.int64())
    if kind == "milli":
        values = pc.cast(column, pa.float64())
        return pc.cast(pc.round(pc.multiply(values, 1000.0)), pa.int64())
    return pc.cast(column, pa.int64())


def canonical(workload: str, table: pa.Table) -> pa.Table:
    """The table reduced to the workload's canonical columns and types (times in epoch ms,
    decimals as integer thousandths), whatever engine wrote it."""
    arrays, names = [], []
    for name, kind in CANONICAL[workload]:
        column = table.column(name)
        arrays.append(pc.cast(column, pa.string()).combine_chunks() if kind == "str" else _as_int64(column, kind))
        names.append(name)
    return pa.table(arrays, names=names)


_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = z.copy()
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def _column_hashes(column: pa.Array) -> np.ndarray:
    if pa.types.is_string(column.type):
        encoded = pc.dictionary_encode(column)
        words = [
            int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in encoded.dictionary.to_pylist()
        ]
        table = np.array(words, dtype=np.uint64)
        return table[encoded.indices.to_numpy(zero_copy_only=False)]
    values = column.fill_null(-(2**63)).to_numpy(zero_copy_only=False).astype(np.int64)
    return _mix64(values.view(np.uint64))


def checksum(table: pa.Table) -> dict[str, Any]:
    """Row count and an order-independent digest: the sum (mod 2**64) of a 64-bit hash of each
    row, itself a hash of the row's canonical values in column order."""
    with np.errstate(over="ignore"):
        rows = np.zeros(table.num_rows, dtype=np.uint64)
        for position, column in enumerate(table.itercolumns()):
            chunk = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            rows = _mix64(rows * np.uint64(31) + _column_hashes(chunk) + np.uint64(position + 1))
        digest = int(rows.sum(dtype=np.uint64)) if len(rows) else 0
    return {"rows": table.num_rows, "digest": f"{digest:016x}"}


def read_output(path: Path, workload: str) -> pa.Table:
    """An engine's output: an Arrow IPC stream file, or a folder of headerless CSV files
    (PyFlink's filesystem sink, in-progress part files included) in canonical column order."""
    if path.is_dir():
        names = [name for name, _ in CANONICAL[workload]]
        kinds = dict(CANONICAL[workload])
        types = {
            name: (pa.string() if kinds[name] in ("str", "ms") else pa.float64() if kinds[name] == "milli" else pa.int64())
            for name in names
        }
        parts = [p for p in sorted(path.rglob("*")) if p.is_file() and p.stat().st_size > 0 and not p.name.endswith(".crc")]
        options = pacsv.ReadOptions(column_names=names)
        convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
        tables = [pacsv.read_csv(str(p), read_options=options, convert_options=convert) for p in parts]
        return pa.concat_tables(tables) if tables else pa.table({n: pa.array([], types[n]) for n in names})
    if not path.exists():
        raise FileNotFoundError(path)
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()
