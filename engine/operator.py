"""The operator contract every physical operator implements, and the Collector it emits to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

MAIN = "main"
"""Name of an operator's main output; side outputs have names of their own (``late``...)."""

LATE = "late"
DEAD_LETTER = "dead_letter"
REASON_COLUMN = "reason"


class Collector:
    """Where an operator emits its output batches: the main output and named side outputs.

    The executor decides what is behind each output (the next operator of a fused chain, a
    channel to another task, or a counter when nothing consumes a side output).
    """

    def __init__(self, emitters: dict[str, Callable[[pa.RecordBatch], None]]) -> None:
        self._emitters = emitters
        self.rows_out: dict[str, int] = dict.fromkeys(emitters, 0)

    def emit(self, batch: pa.RecordBatch) -> None:
        """Sends a batch on the main output. Empty batches are not sent."""
        self.emit_to(MAIN, batch)

    def emit_to(self, output: str, batch: pa.RecordBatch) -> None:
        """Sends a batch on the named output (``"main"`` or a side output)."""
        if batch.num_rows == 0:
            return
        emitter = self._emitters.get(output)
        if emitter is None:
            raise KeyError(f"operator has no output named '{output}'; it has {sorted(self._emitters)}")
        self.rows_out[output] += batch.num_rows
        emitter(batch)


class Operator:
    """Turns input record batches (plus its state) into output record batches.

    Every hook but ``process_batch`` has a default: watermarks pass through, there is no
    state to snapshot and nothing to do on commit. Operators are plain objects, testable
    without any runtime; the executor calls the hooks of one instance from one thread.
    """

    def open(self, task_index: int, parallelism: int) -> None:
        """Called once before any batch, with this instance's place among its parallel peers."""

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        """Handles one input batch; ``input_index`` tells which input (0 left, 1 right...)."""
        raise NotImplementedError

    urgent_outputs: frozenset[str] = frozenset()
    """Outputs whose batches leave the task at once, without waiting for the channel's linger
    or for the rest of the frame being processed (few, latency-critical rows: alerts)."""

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        """Event time reached ``watermark`` (ms) on every input: fire what is complete.

        Returns the watermark to forward downstream (it may hold back, never advance past
        the input), or None to forward nothing this time. Tasks whose operators are all
        stateless (``stateless=True`` nodes: filters, projections, sinks) and that send
        nowhere but to such tasks get no watermarks: nothing there waits for event time.
        """
        return watermark

    def snapshot(self) -> bytes | pa.Table | None:
        """The operator's state, taken on a checkpoint barrier."""
        return None

    def restore(self, state: Any) -> None:
        """Restores the state a previous ``snapshot`` returned."""

    def on_commit(self, checkpoint_id: int) -> None:
        """The checkpoint ``checkpoint_id`` completed on every task."""

    def on_tick(self, now: float, out: Collector) -> None:
        """Called periodically with the processing time (seconds), for time-based work."""

    def close(self) -> None:
        """Called once when the task ends, after the final watermark."""


class StatelessOperator(Operator):
    """An operator with no state across batches (the dataflow marks its node stateless, so
    forward chains of these fuse into one task)."""


class Sink(Operator):
    """An operator at the end of the graph: it consumes batches and emits nothing.

    ``result()`` returns what the sink kept, if anything, for the executor to hand to the
    caller when the job ends (the collect sink returns its table).
    """

    def result(self) -> Any:
        return None
