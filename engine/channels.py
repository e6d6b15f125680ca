"""Channels that cross process boundaries: micro-batching with linger, credit-based
backpressure, and control messages carried in order with the batches, encoded with msgpack.

A channel carries *frames*. A frame is one remote call: a few record batches and a msgpack
list that says, in order, which batch or control message comes next. The sender keeps at most
``credits`` frames un-acknowledged; a frame is acknowledged when the receiver has processed it.
Frames carry a sequence number so that the receiver restores the order whatever the transport
does, and detects a lost or repeated frame. Nothing here depends on Ray: the executor gives
the writer a ``send`` and a ``wait`` function.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgpack
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import CitystreamError, OptionError
from engine.task import Barrier, EndOfStream, Message, Watermark

# Kinds of the items of a frame's control list; each item is [kind, value].
BATCH = 0  # value: index into the frame's batches
WATERMARK = 1  # value: the watermark in ms
END = 2  # value: unused
BARRIER = 3  # value: the checkpoint id

Ack = TypeVar("Ack")


@dataclass(frozen=True)
class ChannelOptions:
    """How tasks on different processes exchange batches; one set per job.

    Args:
        credits: frames a sender may have un-acknowledged on one channel before it waits.
        batch_rows: a frame is sent as soon as it holds this many rows (larger batches are
            sliced, without copying, into frames of this size).
        linger_ms: a frame that is not full is sent when its first message has waited this
            long. 0 sends at the end of every processing step (lowest latency, more calls).
    """

    credits: int = 8
    batch_rows: int = 10_000
    linger_ms: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.credits, int) or self.credits < 1:
            raise OptionError("credits", self.credits, "an integer >= 1")
        if not isinstance(self.batch_rows, int) or self.batch_rows < 1:
            raise OptionError("batch_rows", self.batch_rows, "an integer >= 1")
        if not isinstance(self.linger_ms, int | float) or self.linger_ms < 0:
            raise OptionError("linger_ms", self.linger_ms, "a number of milliseconds >= 0")


def decode_frame(batches: Sequence[pa.RecordBatch], control: bytes) -> list[Message]:
    """The messages of a frame, in the order they were sent."""
    messages: list[Message] = []
    for kind, value in msgpack.unpackb(control):
        if kind == BATCH:
            messages.append(batches[value])
        elif kind == WATERMARK:
            messages.append(Watermark(value))
        elif kind == END:
            messages.append(EndOfStream())
        elif kind == BARRIER:
            messages.append(Barrier(value))
        else:
            raise CitystreamError(f"frame with an unknown control item kind {kind}")
    return messages


@dataclass
class WriterStats:
    """What a writer did, for the task's metrics."""

    frames: int = 0
    rows: int = 0
    credit_wait_s: float = 0.0
    max_in_flight: int = 0


class ChannelWriter(Generic[Ack]):
    """The sending end of one channel.

    Args:
        options: credits, frame size and linger of the job.
        send: sends a frame ``(seq, batches, control)`` and returns something that ``wait``
            understands (a Ray object ref of the receiver's acknowledgement, for instance).
        wait: given the un-acknowledged frames, blocks until at least one is acknowledged and
            returns ``(acknowledged, still_in_flight)``.
        event_time: the event-time column of the stream, if it has one. A batch may then be
            merged with the batch before it across the watermark between them when none of its
            rows is late for that watermark: the receiver sees the same rows, in time for the
            same windows, in one batch instead of two (sources follow every batch with a
            watermark, so without this no small batches would ever merge).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        options: ChannelOptions,
        send: Callable[[int, list[pa.RecordBatch], bytes], Ack],
        wait: Callable[[list[Ack]], tuple[list[Ack], list[Ack]]],
        event_time: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._event_time = event_time
        self._send = send
        self._wait = wait
        self._clock = clock
        self._linger_s = options.linger_ms / 1000
        self.stats = WriterStats()
        self.in_flight: list[Ack] = []
        self._seq = 0
        # Pending messages in order: groups of consecutive batches (merged into one batch when
        # sent) and control items; the watermark at the end is replaced, not appended.
        self._items: list[list[Any]] = []
        self._groups: list[list[pa.RecordBatch]] = []
        self._rows = 0
        self._first_at: float | None = None

    @property
    def pending(self) -> bool:
        return bool(self._items)

    @property
    def deadline(self) -> float | None:
        """When the pending frame must go at the latest (monotonic seconds), or None."""
        return None if self._first_at is None else self._first_at + self._linger_s

    def write(self, message: Message) -> None:
        """Adds a message; sends a frame when it is full or when the message ends the stream."""
        if isinstance(message, pa.RecordBatch):
            self._write_batch(message)
        elif isinstance(message, Watermark):
            if self._items and self._items[-1][0] == WATERMARK:
                self._items[-1][1] = message.value
            else:
                self._append([WATERMARK, message.value])
        elif isinstance(message, EndOfStream):
            self._append([END, 0])
            self.flush()
        elif isinstance(message, Barrier):
            # Sent at once: the receiver aligns on it, and every millisecond it lingers here
            # is a millisecond its other channels are blocked.
            self._append([BARRIER, message.checkpoint_id])
            self.flush()
        else:
            raise CitystreamError(f"a channel cannot carry {type(message).__name__}")

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return  # carries nothing; the watermarks around it still go
        limit = self.options.batch_rows
        if self._rows and self._rows + batch.num_rows > limit:
            self.flush()
        offset = 0
        # Full frames straight from the batch: slices share its buffers, nothing is copied.
        while batch.num_rows - offset >= limit:
            self._append_rows(batch.slice(offset, limit))
            self.flush()
            offset += limit
        if offset < batch.num_rows:
            self._append_rows(batch.slice(offset) if offset else batch)

    def _append_rows(self, batch: pa.RecordBatch) -> None:
        if self._items and self._items[-1][0] == BATCH:
            self._groups[-1].append(batch)
        elif self._mergeable_across_watermark(batch):
            self._groups[-1].append(batch)  # [.., rows, watermark] -> [.., rows + batch, watermark]
        else:
            self._append([BATCH, len(self._groups)])
            self._groups.append([batch])
        self._rows += batch.num_rows

    def _mergeable_across_watermark(self, batch: pa.RecordBatch) -> bool:
        items = self._items
        if self._event_time is None or len(items) < 2 or items[-1][0] != WATERMARK or items[-2][0] != BATCH:
            return False
        earliest = pc.min(batch.column(self._event_time))
        if not earliest.is_valid:
            return False
        value = earliest.value if isinstance(earliest, pa.TimestampScalar) else earliest.as_py()
        return bool(value >= items[-1][1])

    def _append(self, item: list[Any]) -> None:
        if not self._items:
            self._first_at = self._clock()
        self._items.append(item)

    def due(self, now: float) -> bool:
        """True if the pending frame has lingered long enough."""
        return self._first_at is not None and now - self._first_at >= self._linger_s

    def flush(self) -> None:
        """Sends what is pending as one frame, waiting for a credit if none is left."""
        if not self._items:
            return
        batches = [group[0] if len(group) == 1 else pa.concat_batches(group) for group in self._groups]
        control = msgpack.packb(self._items)
        rows = self._rows
        self._items, self._groups, self._rows, self._first_at = [], [], 0, None
        self._acquire_credit()
        self.in_flight.append(self._send(self._seq, batches, control))
        self._seq += 1
        self.stats.frames += 1
        self.stats.rows += rows
        self.stats.max_in_flight = max(self.stats.max_in_flight, len(self.in_flight))

    def _acquire_credit(self) -> None:
        if len(self.in_flight) < self.options.credits:
            return
        started = time.perf_counter()
        while len(self.in_flight) >= self.options.credits:
            _, self.in_flight = self._wait(self.in_flight)
        self.stats.credit_wait_s += time.perf_counter() - started

    def drain(self) -> None:
        """Sends what is pending and waits until the receiver has acknowledged every frame."""
        self.flush()
        while self.in_flight:  # waiting for the last acks is not backpressure: not counted
            _, self.in_flight = self._wait(self.in_flight)


class ReorderBuffer(Generic[Ack]):
    """The receiving end's sequence check: hands frames on in sequence order per channel.

    A frame that arrives early is parked until the ones before it have come; at most
    ``credits`` frames can be parked per channel, since the sender waits for their acks.
    """

    def __init__(self, channels: int) -> None:
        self._expected = [0] * channels
        self._parked: list[dict[int, Ack]] = [{} for _ in range(channels)]
        self.reordered = 0

    def arrive(self, channel: int, seq: int, frame: Ack) -> list[Ack]:
        """The frames that can be processed now, in order (possibly none)."""
        expected = self._expected[channel]
        if seq < expected or seq in self._parked[channel]:
            raise CitystreamError(f"channel {channel}: frame {seq} arrived twice (expected {expected})")
        if seq > expected:
            self._parked[channel][seq] = frame
            self.reordered += 1
            return []
        ready = [frame]
        expected += 1
        parked = self._parked[channel]
        while expected in parked:
            ready.append(parked.pop(expected))
            expected += 1
        self._expected[channel] = expected
        return ready
