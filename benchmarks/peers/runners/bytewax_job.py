"""Runs one workload on Bytewax (one worker, ``bytewax.testing.run_main``) and writes a JSON report.

Runs only in the Bytewax venv (benchmarks/peers/.venvs/bytewax): ``python bytewax_job.py
--workload q1 --data DIR --out FILE --report FILE``. Input: the Arrow IPC files of the run, read
batch by batch with pyarrow; each batch becomes a list of Python tuples (only the columns the
workload uses) that the source hands to Bytewax as one batch; with ``--arrow`` (q1, q2) the items
are the record batches themselves, transformed with pyarrow.compute. Output: an Arrow IPC stream file.
Self-contained: it cannot import citystream (another venv).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pyarrow as pa
import pyarrow.compute as pc
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators.windowing import EventClock, SlidingWindower, TumblingWindower, count_window, fold_window
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

WINDOW = timedelta(seconds=10)
SLIDE = timedelta(seconds=2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EURO_RATE = 0.908
Q2_MODULUS = 123


def _columns(batch: pa.RecordBatch, names: list[str]) -> list[list[Any]]:
    return [batch.column(name).to_pylist() for name in names]


class _FilePartition(StatefulSourcePartition[tuple[Any, ...], int]):
    """The batches of one Arrow IPC file, from batch ``index``, as lists of tuples."""

    def __init__(self, path: str, columns: list[str], times_as_ms: bool, index: int, whole: bool = False) -> None:
        self._reader = pa.ipc.open_file(pa.memory_map(path))
        self._columns, self._times_as_ms, self._index, self._whole = columns, times_as_ms, index, whole

    def next_batch(self) -> list[Any]:
        if self._index >= self._reader.num_record_batches:
            raise StopIteration
        batch = self._reader.get_batch(self._index)
        self._index += 1
        if self._whole:  # the Arrow record batch itself is the item
            return [batch]
        if self._times_as_ms:
            batch = pa.record_batch(
                [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in batch.columns], names=batch.schema.names
            )
        return list(zip(*_columns(batch, self._columns), strict=True))

    def snapshot(self) -> int:
        return self._index


class ArrowFileInput(FixedPartitionedSource[tuple[Any, ...], int]):
    """One partition over an Arrow IPC file; timestamps as datetimes (for Bytewax's clocks) or
    as epoch-ms integers."""

    def __init__(self, path: Path, columns: list[str], times_as_ms: bool, whole: bool = False) -> None:
        self.path, self.columns, self.times_as_ms, self.whole = str(path), columns, times_as_ms, whole

    def list_parts(self) -> list[str]:
        return ["0"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _FilePartition:
        return _FilePartition(self.path, self.columns, self.times_as_ms, resume_state or 0, self.whole)


class _MergedPartition(StatefulSourcePartition[tuple[Any, ...], int]):
    def __init__(self, items: list[tuple[Any, ...]], batch_size: int, index: int) -> None:
        self._items, self._batch_size, self._index = items, batch_size, index

    def next_batch(self) -> list[tuple[Any, ...]]:
        if self._index >= len(self._items):
            raise StopIteration
        batch = self._items[self._index : self._index + self._batch_size]
        self._index += len(batch)
        return batch

    def snapshot(self) -> int:
        return self._index


class FusionInput(FixedPartitionedSource[tuple[Any, ...], int]):
    """Detections and weather readings merged in event-time order (a reading before a detection
    of the same time): Bytewax has no event-time alignment of two inputs, so the as-of join needs
    its input in time order. ("w", district, pm10) and ("d", district, camera, ts)."""

    def __init__(self, detections: Path, weather: Path, batch_size: int) -> None:
        self.detections, self.weather, self.batch_size = str(detections), str(weather), batch_size

    def list_parts(self) -> list[str]:
        return ["0"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _MergedPartition:
        detections = pa.ipc.open_file(pa.memory_map(self.detections)).read_all()
        weather = pa.ipc.open_file(pa.memory_map(self.weather)).read_all()
        times = pa.concat_arrays(
            [weather.column("ts").combine_chunks().cast(pa.int64()), detections.column("ts").combine_chunks().cast(pa.int64())]
        )
        sides = pa.concat_arrays(
            [pa.repeat(pa.scalar(0, pa.int8()), weather.num_rows), pa.repeat(pa.scalar(1, pa.int8()), detections.num_rows)]
        )
        order = pc.sort_indices(pa.table({"t": times, "side": sides}), sort_keys=[("t", "ascending"), ("side", "ascending")])
        w_items = [
            ("w", d, p) for d, p in zip(weather.column("district").to_pylist(), weather.column("pm10").to_pylist(), strict=True)
        ]
        d_items = [
            ("d", d, c, t)
            for d, c, t in zip(
                detections.column("district").to_pylist(),
                detections.column("camera").to_pylist(),
                detections.column("ts").to_pylist(),
                strict=True,
            )
        ]
        everything = w_items + d_items
        items = [everything[i] for i in order.tolist()]
        return _MergedPartition(items, self.batch_size, resume_state or 0)


class _IpcPartition(StatelessSinkPartition[tuple[Any, ...]]):
    def __init__(self, sink: IpcOutput) -> None:
        self._sink = sink
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None

    def write_batch(self, items: list[Any]) -> None:
        if not items:
            return
        if self._sink.first_result is None:
            self._sink.first_result = time.time()
        if isinstance(items[0], pa.RecordBatch):  # Arrow mode: the items are whole batches
            if self._writer is None:
                self._writer = pa.ipc.new_stream(self._sink.path, items[0].schema)
            for item in items:
                self._writer.write_batch(item)
                self._sink.rows += item.num_rows
            return
        columns = list(zip(*items, strict=True))
        batch = pa.record_batch(
            [pa.array(c, t) for c, t in zip(columns, self._sink.schema.types, strict=True)], schema=self._sink.schema
        )
        if self._writer is None:
            self._writer = pa.ipc.new_stream(self._sink.path, self._sink.schema)
        self._writer.write_batch(batch)
        self._sink.rows += len(items)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class IpcOutput(DynamicSink[tuple[Any, ...]]):
    """Tuples written as Arrow batches (one per Bytewax batch) to an IPC stream file."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = str(path), schema
        self.first_result: float | None = None
        self.rows = 0

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _IpcPartition:
        return _IpcPartition(self)


def _ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _event_clock(ts_getter: Any) -> Any:
    """An event-time clock for a replay: the watermark is the latest event time seen (no wait:
    the input is in order), and it does not advance with the system clock, which would make rows
    of the same millisecond late when a later batch comes; windows close on newer items or at
    the end of the input (Bytewax's documented set-up for replaying old data)."""
    return EventClock(ts_getter, wait_for_system_duration=timedelta(0), now_getter=lambda: EPOCH, to_system_utc=lambda _: None)


def _arrow_q1(batch: pa.RecordBatch) -> pa.RecordBatch:
    price = pc.multiply(batch.column("price"), EURO_RATE)
    times = batch.column("dateTime").cast(pa.int64())
    columns = [batch.column("auction"), batch.column("bidder"), price, times, batch.column("extra")]
    return pa.record_batch(columns, names=["auction", "bidder", "price", "dateTime", "extra"])


def _arrow_q2(batch: pa.RecordBatch) -> pa.RecordBatch:
    kept = batch.filter(pc.equal(pc.modulo(batch.column("auction"), Q2_MODULUS), 0))
    return pa.record_batch([kept.column("auction"), kept.column("price")], names=["auction", "price"])


def build(workload: str, data: Path, out: IpcOutput, batch_size: int, late: list[int], arrow: bool = False) -> Dataflow:
    """The Bytewax dataflow of ``workload``; with ``arrow`` (q1 and q2 only), the items are whole
    Arrow record batches transformed with pyarrow.compute (Bytewax as the vessel of columnar code)."""
    flow = Dataflow(f"peers_{workload}")
    if arrow:
        if workload not in ("q1", "q2"):
            raise ValueError("the Arrow mode has only the stateless workloads q1 and q2")
        batches = op.input("bids", flow, ArrowFileInput(data / "bids.arrow", [], times_as_ms=False, whole=True))
        op.output("out", op.map(workload, batches, _arrow_q1 if workload == "q1" else _arrow_q2), out)
        return flow
    if workload in ("q1", "q2"):
        columns = ["auction", "bidder", "price", "dateTime", "extra"] if workload == "q1" else ["auction", "price"]
        bids = op.input("bids", flow, ArrowFileInput(data / "bids.arrow", columns, times_as_ms=True))
        if workload == "q1":
            rows = op.flat_map_batch("q1", bids, lambda items: [(a, b, p * EURO_RATE, t, e) for a, b, p, t, e in items])
        else:
            rows = op.flat_map_batch("q2", bids, lambda items: [(a, p) for a, p in items if a % Q2_MODULUS == 0])
        op.output("out", rows, out)
        return flow

    def count_late(item: Any) -> None:
        late[0] += 1

    if workload in ("tumbling", "hopping"):
        bids = op.input("bids", flow, ArrowFileInput(data / "bids.arrow", ["auction", "dateTime"], times_as_ms=False))
        clock: EventClock[tuple[Any, ...]] = _event_clock(lambda item: item[1])
        offset = WINDOW if workload == "tumbling" else SLIDE
        windower: Any = TumblingWindower(WINDOW, EPOCH) if workload == "tumbling" else SlidingWindower(WINDOW, SLIDE, EPOCH)
        counted = count_window("count", bids, clock, windower, key=lambda item: str(item[0]))
        offset_ms, length_ms = offset // timedelta(milliseconds=1), WINDOW // timedelta(milliseconds=1)

        def row(item: tuple[str, tuple[int, int]]) -> tuple[int, int, int, int]:
            key, (window_id, count) = item
            start = window_id * offset_ms
            return (int(key), start, start + length_ms, count)

        op.output("out", op.map("rows", counted.down, row), out)
        op.inspect("late", counted.late, lambda step, item: count_late(item))
        return flow
    if workload == "fusion":
        merged = op.input("merged", flow, FusionInput(data / "detections.arrow", data / "weather.arrow", batch_size))
        by_district = op.key_on("by_district", merged, lambda item: item[1])

        def latest_weather(
            pm10: float | None, item: tuple[Any, ...]
        ) -> tuple[float | None, list[tuple[str, datetime, float | None]]]:
            if item[0] == "w":
                return item[2], []
            return pm10, [(item[2], item[3], pm10)]

        fused = op.stateful_flat_map("asof", by_district, latest_weather)
        by_camera = op.key_on("by_camera", op.map("unkey", fused, lambda kv: kv[1]), lambda row: row[0])
        fusion_clock: EventClock[tuple[str, datetime, float | None]] = _event_clock(lambda row: row[1])

        def fold(acc: tuple[int, float | None], row: tuple[str, datetime, float | None]) -> tuple[int, float | None]:
            count, high = acc
            pm10 = row[2]
            return count + 1, high if pm10 is None or (high is not None and high >= pm10) else pm10

        windows = fold_window(
            "window", by_camera, fusion_clock, TumblingWindower(WINDOW, EPOCH), lambda: (0, None), fold, lambda a, b: a
        )
        length_ms = WINDOW // timedelta(milliseconds=1)

        def fusion_row(item: tuple[str, tuple[int, tuple[int, float | None]]]) -> tuple[str, int, int, int, float | None]:
            camera, (window_id, (count, high)) = item
            start = window_id * length_ms
            return (camera, start, start + length_ms, count, high)

        op.output("out", op.map("rows", windows.down, fusion_row), out)
        op.inspect("late", windows.late, lambda step, item: count_late(item))
        return flow
    raise ValueError(f"unknown workload {workload}")


SCHEMAS = {
    "q1": pa.schema(
        [
            ("auction", pa.int64()),
            ("bidder", pa.int64()),
            ("price", pa.float64()),
            ("dateTime", pa.int64()),
            ("extra", pa.string()),
        ]
    ),
    "q2": pa.schema([("auction", pa.int64()), ("price", pa.int64())]),
    "tumbling": pa.schema(
        [("auction", pa.int64()), ("window_start", pa.int64()), ("window_end", pa.int64()), ("count", pa.int64())]
    ),
    "hopping": pa.schema(
        [("auction", pa.int64()), ("window_start", pa.int64()), ("window_end", pa.int64()), ("count", pa.int64())]
    ),
    "fusion": pa.schema(
        [
            ("camera", pa.string()),
            ("window_start", pa.int64()),
            ("window_end", pa.int64()),
            ("count", pa.int64()),
            ("max_pm10", pa.float64()),
        ]
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True, choices=sorted(SCHEMAS))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--arrow", action="store_true", help="q1/q2 on whole Arrow batches (pyarrow.compute in map)")
    parser.add_argument(
        "--batch-size", type=int, default=10_000, help="items per input batch (fusion; the files' batches otherwise)"
    )
    args = parser.parse_args()
    imported = time.time()
    out = IpcOutput(args.out, SCHEMAS[args.workload])
    late = [0]
    flow = build(args.workload, args.data, out, args.batch_size, late, arrow=args.arrow)
    job_start = time.time()
    run_main(flow)
    job_end = time.time()
    report = {
        "engine": "bytewax-arrow" if args.arrow else "bytewax",
        "workload": args.workload,
        "imported": imported,
        "job_start": job_start,
        "first_result": out.first_result,
        "job_end": job_end,
        "rows_out": out.rows,
        "late_rows": late[0],
        "version": metadata.version("bytewax"),
        "python": sys.version.split()[0],
    }
    args.report.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
