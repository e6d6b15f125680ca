"""Sinks: the ends of a dataflow. The collect sink keeps what it receives, for tests and runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from engine.operator import Collector, Sink


class CollectSink(Sink):
    """Keeps every batch it receives; the job result holds them as one table."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.batches: list[pa.RecordBatch] = []

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        self.batches.append(batch)

    def result(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=self.schema)

    def snapshot(self) -> dict[str, Any]:
        """``{"batches": table}``: what it kept so far, as the job result would hold it."""
        return {"batches": self.result()}

    def restore(self, state: dict[str, Any]) -> None:
        self.batches = state["batches"].to_batches()


class CallbackSink(Sink):
    """Calls a function with each batch (in the process that runs the sink's task)."""

    def __init__(self, callback: Callable[[pa.RecordBatch], None]) -> None:
        self.callback = callback

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        self.callback(batch)


class CountSink(Sink):
    """Counts rows and batches and keeps nothing else (a blackhole for benchmarks)."""

    def __init__(self) -> None:
        self.rows = 0
        self.batches = 0

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        self.rows += batch.num_rows
        self.batches += 1

    def result(self) -> dict[str, int]:
        return {"rows": self.rows, "batches": self.batches}

    def snapshot(self) -> dict[str, int]:
        """``{"rows": int, "batches": int}``: the counts so far."""
        return self.result()

    def restore(self, state: dict[str, int]) -> None:
        self.rows, self.batches = state["rows"], state["batches"]
