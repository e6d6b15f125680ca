"""Sources: where batches enter a dataflow, and the event-time assigner that follows each one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.expr import Expr, failed_checks
from engine.operator import DEAD_LETTER, REASON_COLUMN, Collector, Operator
from engine.state import StateError
from engine.timeutil import EVENT_TIME_TYPE, MIN_WATERMARK, normalize_event_time
from engine.watermarks import BoundedOutOfOrderness


class EndOfInput:
    """Returned by ``Source.poll`` when a source partition has no more data, ever."""


END_OF_INPUT = EndOfInput()


class Source:
    """A partitioned, pull-based source of record batches with a fixed schema.

    Each parallel instance is opened with its partition; ``poll`` then returns a batch,
    None when nothing is ready now (the source is idle), or END_OF_INPUT.
    """

    schema: pa.Schema

    def open(self, partition: int, partitions: int) -> None:
        """Prepares to read partition ``partition`` of ``partitions``."""

    replayable: bool = False
    """True if ``snapshot``/``restore`` give the source's place in its input (checkpoints need it)."""

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        raise NotImplementedError

    def snapshot(self) -> Any:
        """The source's place in its partition, taken between two polls on a checkpoint.

        After ``open(partition, partitions)`` and ``restore(state)``, ``poll`` returns exactly
        the batches that followed the snapshot. The value goes through ``engine.state``
        (numbers, strings, lists, dicts, numpy and Arrow data).
        """
        raise StateError(f"{type(self).__name__} cannot be checkpointed: it cannot rewind to a place in its input")

    def restore(self, state: Any) -> None:
        """Goes back to the place ``snapshot`` returned (called after ``open``)."""
        raise StateError(f"{type(self).__name__} cannot be restored from a checkpoint")

    def progress(self) -> int | None:
        """Event time (ms) T such that every row this partition returns from now on is stamped
        later than T, or None if the source cannot say. Asked when ``poll`` had nothing: a
        source that knows its schedule (a paced generator, a clock-driven feed) lets the
        watermark advance while it is quiet, so windows close without waiting for its next row.
        The promise is the source's own; out-of-orderness is not subtracted from it."""
        return None

    def on_commit(self, checkpoint_id: int, state: Any) -> None:
        """Checkpoint ``checkpoint_id`` completed everywhere; ``state`` is what ``snapshot``
        returned for it. Input before that place will never be read again (a log may drop it)."""

    def close(self) -> None:
        """Releases what the source holds."""


class TableSource(Source):
    """A bounded source over an in-memory table, cut into batches of ``batch_size`` rows.

    With several partitions, partition p reads batches p, p + n, p + 2n... in order.

    Example:
        >>> import pyarrow as pa
        >>> source = TableSource(pa.table({"ts": [1, 2, 3]}), batch_size=2)
        >>> source.open(0, 1)
        >>> source.poll().num_rows
        2
    """

    replayable = True
    """The table is in memory: the index of the next batch is the whole place in it."""

    def __init__(self, data: pa.Table | Iterable[pa.RecordBatch], batch_size: int = 10_000) -> None:
        if isinstance(data, pa.Table):
            self._batches = data.to_batches(max_chunksize=batch_size)
            self.schema = data.schema
        else:
            self._batches = list(data)
            if not self._batches:
                raise ValueError("TableSource needs a table or at least one batch")
            self.schema = self._batches[0].schema
        self._position = 0
        self._step = 1

    def open(self, partition: int, partitions: int) -> None:
        self._position = partition
        self._step = partitions

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        if self._position >= len(self._batches):
            return END_OF_INPUT
        batch = self._batches[self._position]
        self._position += self._step
        return batch

    def snapshot(self) -> Any:
        # The partition count is kept to refuse a restore into another cut of the batches.
        return {"position": self._position, "partitions": self._step}

    def restore(self, state: Any) -> None:
        self._position = strided_place("TableSource", "batch", state["position"], state["partitions"], self._position, self._step)


def strided_place(source: str, unit: str, saved: int, partitions: int, current: int, step: int) -> int:
    """The checkpointed place of a source whose partition p of n reads units p, p + n, ...;
    refuses one taken with another number of partitions or for another partition."""
    if partitions != step or saved % partitions != current % step:
        raise StateError(
            f"{source}: a checkpoint of {unit} {saved} of {partitions} partitions cannot be restored "
            f"into partition {current % step} of {step}"
        )
    return saved


class GeneratorSource(Source):
    """A source over a generator function ``make(partition, partitions)``.

    The generator yields record batches, or None to say that nothing is ready now (the
    source is idle); when it returns, the partition has ended.

    Not replayable: a Python generator cannot be rewound nor its place written down, so a
    dataflow reading one cannot be checkpointed (``snapshot`` raises StateError). A source
    that must survive a restart implements ``snapshot``/``restore`` itself, as TableSource does.
    """

    def __init__(
        self,
        schema: pa.Schema,
        make: Callable[[int, int], Iterator[pa.RecordBatch | None]],
    ) -> None:
        self.schema = schema
        self._make = make
        self._iterator: Iterator[pa.RecordBatch | None] | None = None

    def open(self, partition: int, partitions: int) -> None:
        self._iterator = self._make(partition, partitions)

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        assert self._iterator is not None, "open() the source first"
        try:
            return next(self._iterator)
        except StopIteration:
            return END_OF_INPUT


def output_schema(raw: pa.Schema, event_time: str) -> pa.Schema:
    """The schema of a source's stream: the raw one with the time column as timestamp[ms, UTC]."""
    index = raw.get_field_index(event_time)
    return raw.set(index, pa.field(event_time, EVENT_TIME_TYPE, nullable=True))


def dead_letter_schema(raw: pa.Schema) -> pa.Schema:
    """A dead-letter output keeps the row as it came and adds the reason it was refused."""
    return raw.append(pa.field(REASON_COLUMN, pa.string()))


class EventTimeAssigner(Operator):
    """First operator after every source: normalises the event time, checks the declared
    validations, sends refused rows to ``dead_letter`` with a reason, and generates
    watermarks with bounded out-of-orderness."""

    def __init__(
        self,
        event_time: str,
        out_of_orderness_ms: int,
        time_format: str | None = None,
        validations: dict[str, Expr] | None = None,
    ) -> None:
        self.event_time = event_time
        self.time_format = time_format
        self.validations = validations or {}
        self.generator = BoundedOutOfOrderness(out_of_orderness_ms)
        self._pending_watermark: int | None = None
        self._emitted = MIN_WATERMARK

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        index = batch.schema.get_field_index(self.event_time)
        raw_time = batch.column(index)
        times, unparseable = normalize_event_time(raw_time, self.time_format)
        refused = None
        reasons = None
        if times.null_count or unparseable is not None:
            refused = pc.is_null(times)
            reasons = pc.if_else(
                unparseable if unparseable is not None else pa.repeat(False, len(times)),
                pa.scalar(f"unparseable event time in column '{self.event_time}'"),
                pa.scalar(f"null event time in column '{self.event_time}'"),
            )
        refused, reasons = failed_checks(batch, list(self.validations.items()), refused, reasons)
        if refused is not None and reasons is not None and pc.any(refused).as_py():
            dead = batch.filter(refused).append_column(REASON_COLUMN, reasons.filter(refused))
            out.emit_to(DEAD_LETTER, dead)
            kept = pc.invert(refused)
            batch = batch.filter(kept)
            times = times.filter(kept)
        if times is not raw_time:
            batch = batch.set_column(index, pa.field(self.event_time, EVENT_TIME_TYPE), times)
        out.emit(batch)
        advanced = self.generator.observe(times)
        if advanced is not None:
            self.advance_to(advanced)

    def advance_to(self, watermark: int) -> None:
        """Raises the watermark to ``watermark`` (from a batch, or a source's ``progress``);
        never lowers it."""
        if watermark > self._emitted:
            self._emitted = self._pending_watermark = watermark

    def take_watermark(self) -> int | None:
        """The watermark generated since the last call, if it advanced."""
        watermark, self._pending_watermark = self._pending_watermark, None
        return watermark

    def snapshot(self) -> Any:
        return {"max_seen": self.generator.max_seen}

    def restore(self, state: Any) -> None:
        self.generator.max_seen = state.get("max_seen", MIN_WATERMARK)
        self._emitted = self.generator.current
