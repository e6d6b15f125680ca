"""The ingest log: a durable, append-only log of the batches edge devices push in, written before
a batch is acknowledged, from which an ingest source replays after a restart.

Every batch gets an offset: the number of its record, from 0, one more for each batch, across
segments. A checkpoint keeps the offset of the next batch to read; once it is committed,
``release_before`` deletes the segments that only hold batches before it.

Files in ``<directory>`` (little-endian, framed by ``actors.log_records``)::

    ingest-<name>.lock                        empty; the writer's flock (never deleted)
    ingest-<name>-<first offset, 20 digits>.seg, a segment:
      file header   magic b"CSINGLOG" (8 bytes), format version (u16, now 1)
      record        type 1, segment start: its first offset (u64), the number of devices (u32),
                    then per device: name length (u16), name (UTF-8), last batch_sequence (u64)
      records       type 2, a batch: offset (u64), batch_sequence (u64), device name length
                    (u16), device name (UTF-8), then the batch as an Arrow IPC stream

Each record has the CRC32 of its type, length and payload. A segment is written under a
``.tmp`` name and renamed once its start record is on disk, so a segment file always begins
whole; its start record carries every device's last ``batch_sequence`` so far, so that the
deduplication of re-sent batches survives the deletion of the segments before it.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pyarrow as pa

from actors.log_records import (
    LogFormat,
    ScannedRecord,
    frame_record,
    lock_exclusive,
    read_all,
    read_record,
    scan_records,
    sync_directory,
    write_at,
)
from engine.errors import CitystreamError, OptionError

logger = logging.getLogger(__name__)

MAGIC = b"CSINGLOG"
FORMAT_VERSION = 1
SEGMENT_START_RECORD = 1
BATCH_RECORD = 2
DEFAULT_SEGMENT_BYTES = 64 * 2**20

_FORMAT = LogFormat(MAGIC, FORMAT_VERSION, "ingest log segment")
_SEGMENT_START = struct.Struct("<QI")  # first offset, number of devices
_DEVICE_NAME = struct.Struct("<H")  # length of a device name
_DEVICE_SEQUENCE = struct.Struct("<Q")  # a device's last batch_sequence
_BATCH = struct.Struct("<QQH")  # offset, batch_sequence, device name length
_MAX_DEVICE_BYTES = 2**16 - 1
_MAX_SEQUENCE = 2**64 - 1
# The name is part of file names: no separators, no leading dot.
_LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class IngestRecord:
    """One logged batch: its offset, who pushed it, its per-device sequence and the batch."""

    offset: int
    device: str
    batch_sequence: int
    batch: pa.RecordBatch


class OffsetNotLogged(CitystreamError, KeyError):
    """No batch with that offset in the ingest log: released already, or not logged yet.

    It is both a ``KeyError`` and a ``CitystreamError``: catch whichever reads better.
    """

    def __init__(self, log: str, offset: int, first: int, end: int) -> None:
        self.offset = offset
        held = f"offsets {first}..{end - 1}" if end > first else f"no batch; the next gets offset {end}"
        super().__init__(f"ingest log {log}: no batch with offset {offset} (it holds {held})")

    def __str__(self) -> str:
        # KeyError.__str__ would print the message in quotes.
        return BaseException.__str__(self)


@dataclass
class _Segment:
    first: int  # offset of its first batch
    path: Path
    fd: int | None  # None until an old segment is first read after a reopen
    positions: array | None  # byte position of each batch record; None until indexed
    end: int = 0  # (the active segment) where its next record is written


class IngestLog:
    """The durable ingest log of one kind of pushed input (``name``: "detections", "readings").

    ``append`` writes one batch and returns only once it is on disk (one write and one fsync
    per batch); a batch whose device already logged that ``batch_sequence`` or a later one is
    skipped, which makes a device's re-sending after a reconnect harmless, also across a
    restart. Opening the log recovers it: in the newest segment, a record cut short by a crash
    or one whose CRC does not match is cut off with everything after it, with a warning. Older
    segments were complete and synced when the log moved on; they are read (and checked) only
    when a batch of theirs is first read, so opening costs one segment, not the whole log.

    Thread-safe: appends are serialized by one lock held across the write and the fsync; reads
    and the index share a second lock, never held across an fsync, so a reader never waits for
    the disk of a writer, and sees a batch only once it is durable.

    Only one ``IngestLog`` may have a log open at a time (an exclusive ``flock`` on
    ``ingest-<name>.lock``, on POSIX): a second one, in this process or another, raises
    ``CitystreamError``. The lock goes with the process, so a restarted one opens the log again.

    Args:
        directory: where the files live; created if missing.
        name: the kind of input (letters, digits, ``.``, ``_``, ``-``); it names the files.
        segment_bytes: a segment is closed and a new one started when the next record would
            take it beyond this size (a record larger than that gets a segment of its own).
        fsync: whether ``append`` waits for the disk. Turning it off keeps what survives a
            crash of the process, not of the machine; for tests and benchmarks.

    Example:
        >>> import tempfile
        >>> batch = pa.record_batch({"camera": ["songdo-central-park"], "confidence": [0.9]})
        >>> with tempfile.TemporaryDirectory() as directory, IngestLog(directory, "detections") as log:
        ...     first = log.append(batch, device="edge-7", batch_sequence=1)
        ...     again = log.append(batch, device="edge-7", batch_sequence=1)  # re-sent: skipped
        ...     first, again, log.next_offset, log.read(0).batch.num_rows, log.last_sequence("edge-7")
        (0, None, 1, 1, 1)
    """

    def __init__(self, directory: str | Path, name: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES, fsync: bool = True) -> None:
        if not isinstance(name, str) or not _LOG_NAME.fullmatch(name):
            raise OptionError("name", name, "a name of letters, digits, '.', '_' and '-' that starts with a letter or digit")
        if isinstance(segment_bytes, bool) or not isinstance(segment_bytes, int) or segment_bytes < 1:
            raise OptionError("segment_bytes", segment_bytes, "an integer >= 1 (bytes)")
        self.name = name
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.prefix = f"ingest-{name}"
        self._segment_name = re.compile(rf"{re.escape(self.prefix)}-(\d{{20}})\.seg(\.tmp)?")
        self._write_lock = threading.Lock()  # serializes append (and a roll), release_before, close
        self._lock = threading.Lock()  # guards the segments, the offsets, the devices; no fsync under it
        self._segments: list[_Segment] = []  # oldest first; the last one is written
        self._next_offset = 0
        self._devices: dict[str, int] = {}  # device -> its last batch_sequence
        self._broken: str | None = None
        self._closed = False
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_path = self.directory / f"{self.prefix}.lock"
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._lock_fd: int | None = lock_fd
        try:
            if not lock_exclusive(lock_fd):
                raise CitystreamError(f"ingest log {self} is already open in another IngestLog (this or another process)")
            self._recover()
        except BaseException:
            self._close_files()
            raise
        logger.debug(
            "ingest log %s opened: offsets %d..%d in %d segments", self, self.first_offset, self._next_offset, len(self._segments)
        )

    # ---- writing ------------------------------------------------------------------------------

    def append(self, batch: pa.RecordBatch, device: str = "", batch_sequence: int = 0) -> int | None:
        """Logs ``batch`` and returns its offset, or None if ``device`` logged ``batch_sequence``
        (or a later one) already: then nothing is written.

        Only a batch with both a ``device`` and a ``batch_sequence`` above 0 is deduplicated (and
        moves the device's last sequence); the others are always logged. The batch is on disk
        (written and fsynced) when this returns, and only then can it be read.

        Raises:
            CitystreamError: the batch is not a ``RecordBatch``, the device name is longer than
                65535 bytes, the log is closed, or the write failed (then the log refuses writes
                until it is reopened, which recovers what reached the disk).
        """
        if not isinstance(batch, pa.RecordBatch):
            raise CitystreamError(f"ingest log {self}: append takes a pyarrow.RecordBatch, not {type(batch).__name__}")
        if isinstance(batch_sequence, bool) or not isinstance(batch_sequence, int) or not 0 <= batch_sequence <= _MAX_SEQUENCE:
            raise OptionError("batch_sequence", batch_sequence, "an integer from 0 (none) to 2**64 - 1")
        device_bytes = device.encode()
        if len(device_bytes) > _MAX_DEVICE_BYTES:
            raise CitystreamError(
                f"ingest log {self}: device name {device[:40]!r}... has {len(device_bytes)} bytes; at most {_MAX_DEVICE_BYTES}"
            )
        deduplicated = bool(device) and batch_sequence > 0
        with self._write_lock:
            self._check_writable()
            if deduplicated and batch_sequence <= self._devices.get(device, 0):
                return None
            offset = self._next_offset
            record = frame_record(BATCH_RECORD, _encode_batch(offset, device_bytes, batch_sequence, batch))
            active = self._segments[-1]
            assert active.positions is not None and active.fd is not None
            if active.positions and active.end + len(record) > self.segment_bytes:
                active = self._roll()
            assert active.positions is not None and active.fd is not None
            position = active.end
            try:
                active.end = write_at(active.fd, record, position, self.fsync)
            except OSError as exc:
                # After a failed fsync the page cache cannot be trusted: stop writing, and let a
                # reopen read what really is on disk.
                self._broken = f"{type(exc).__name__}: {exc}"
                try:
                    os.ftruncate(active.fd, position)
                except OSError:
                    pass
                raise CitystreamError(f"ingest log {active.path}: the write failed ({exc}); the batch is not logged") from exc
            with self._lock:
                active.positions.append(position)
                self._next_offset = offset + 1
                if deduplicated:
                    self._devices[device] = batch_sequence
        return offset

    def release_before(self, offset: int) -> int:
        """Deletes the segments that hold only batches before ``offset``; returns how many.

        The segment that holds ``offset`` stays, and so does the newest one (it is written):
        batches from ``first_offset`` on can still be read. Segments go oldest first, each
        removal made durable before the next, so a crash never leaves a hole in the offsets.

        Raises:
            OptionError: ``offset`` is negative or beyond ``next_offset``.
            CitystreamError: a segment could not be removed (it and the newer ones stay).
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or offset > self.next_offset:
            raise OptionError("offset", offset, f"an integer from 0 to the next offset, {self.next_offset}")
        released = 0
        with self._write_lock:
            if self._closed:
                raise CitystreamError(f"ingest log {self} is closed")
            while True:
                with self._lock:
                    if len(self._segments) < 2 or self._segments[1].first > offset:
                        break
                    oldest = self._segments[0]
                try:
                    oldest.path.unlink()
                    if self.fsync:
                        sync_directory(self.directory)
                except OSError as exc:
                    raise CitystreamError(f"ingest log {self}: segment {oldest.path} could not be removed ({exc})") from exc
                with self._lock:  # readers hold it while they read from a segment's file
                    self._segments.pop(0)
                    if oldest.fd is not None:
                        os.close(oldest.fd)
                released += 1
        if released:
            logger.debug("ingest log %s: %d segments released; it starts at offset %d", self, released, self.first_offset)
        return released

    def close(self) -> None:
        """Closes the files (and releases the log for another ``IngestLog``); idempotent.

        ``append``, ``read`` and ``release_before`` raise afterwards.
        """
        with self._write_lock, self._lock:
            if not self._closed:
                self._closed = True
                self._close_files()

    def __enter__(self) -> IngestLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()

    # ---- reading ------------------------------------------------------------------------------

    def read(self, offset: int) -> IngestRecord:
        """The batch logged at ``offset``, read from its segment's file (CRC checked).

        Raises:
            OffsetNotLogged: released already, or not logged yet (a ``KeyError`` and a
                ``CitystreamError``).
            CitystreamError: the log is closed, or the record or its segment is damaged.
        """
        with self._lock:
            if self._closed:
                raise CitystreamError(f"ingest log {self} is closed")
            segment = self._segment_of(offset)
            positions = segment.positions if segment.positions is not None else self._index(segment)
            assert segment.fd is not None
            kind, payload = read_record(segment.fd, positions[offset - segment.first], str(segment.path))
        where = f"{segment.path}, offset {offset}"
        if kind != BATCH_RECORD:
            raise CitystreamError(f"{where}: a record of type {kind} where a batch (type {BATCH_RECORD}) was expected")
        record = _decode_batch(memoryview(payload), where)
        if record.offset != offset:
            raise CitystreamError(f"{where}: the record holds offset {record.offset}")
        return record

    def read_from(self, offset: int, limit: int | None = None) -> Iterator[IngestRecord]:
        """The batches from ``offset`` on, in order, up to the last one logged when it reaches
        it (batches logged meanwhile are included); at most ``limit``.

        Raises:
            OffsetNotLogged: ``offset`` was released already (when the first batch is read).
        """
        if limit is not None and limit < 0:
            raise OptionError("limit", limit, "None (all) or an integer >= 0")
        while (limit is None or limit > 0) and offset < self.next_offset:
            yield self.read(offset)
            offset += 1
            limit = None if limit is None else limit - 1

    @property
    def next_offset(self) -> int:
        """The offset the next batch gets: the number of batches ever logged."""
        with self._lock:
            return self._next_offset

    @property
    def first_offset(self) -> int:
        """The oldest offset still readable (the first of the oldest segment kept)."""
        with self._lock:
            return self._segments[0].first if self._segments else self._next_offset

    def last_sequence(self, device: str) -> int:
        """The last ``batch_sequence`` logged for ``device``; 0 if none."""
        with self._lock:
            return self._devices.get(device, 0)

    def device_sequences(self) -> dict[str, int]:
        """Every device's last logged ``batch_sequence`` (a copy)."""
        with self._lock:
            return dict(self._devices)

    @property
    def segment_paths(self) -> list[Path]:
        """The segments' files, oldest first."""
        with self._lock:
            return [segment.path for segment in self._segments]

    def __str__(self) -> str:
        return str(self.directory / self.prefix)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"IngestLog({str(self.directory)!r}, {self.name!r}, offsets {self.first_offset}..{self.next_offset}, {state})"

    # ---- internals ----------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._closed:
            raise CitystreamError(f"ingest log {self} is closed")
        if self._broken is not None:
            raise CitystreamError(f"ingest log {self} refuses writes after a failed write ({self._broken}); reopen it to recover")

    def _segment_path(self, first: int) -> Path:
        return self.directory / f"{self.prefix}-{first:020d}.seg"

    def _segment_of(self, offset: int) -> _Segment:
        # Callers hold _lock. Few segments are kept (they are released at each checkpoint).
        if isinstance(offset, int) and self._segments and self._segments[0].first <= offset < self._next_offset:
            for segment in reversed(self._segments):
                if segment.first <= offset:
                    return segment
        raise OffsetNotLogged(str(self), offset, self._segments[0].first if self._segments else 0, self._next_offset)

    def _roll(self) -> _Segment:
        """Starts the next segment (writers only, under _write_lock); the old one stays open for reads."""
        try:
            segment = self._create_segment(self._next_offset, self._devices)
        except OSError as exc:
            raise CitystreamError(
                f"ingest log {self}: segment {self._segment_path(self._next_offset)} could not be created ({exc}); "
                "the batch is not logged"
            ) from exc
        with self._lock:
            self._segments.append(segment)
        return segment

    def _create_segment(self, first: int, devices: dict[str, int]) -> _Segment:
        """A new segment holding only its start record, durable under its final name."""
        path = self._segment_path(first)
        temporary = path.with_name(path.name + ".tmp")
        data = _FORMAT.header + frame_record(SEGMENT_START_RECORD, _encode_segment_start(first, devices))
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            end = write_at(fd, data, 0, self.fsync)
            os.replace(temporary, path)
            if self.fsync:
                sync_directory(self.directory)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        return _Segment(first, path, fd, array("Q"), end)

    def _recover(self) -> None:
        """Finds the segments, reads the newest one and cuts off its damaged or unfinished tail."""
        firsts = []
        for path in self.directory.iterdir():
            match = self._segment_name.fullmatch(path.name)
            if match and match.group(2):
                # A segment being started when the process died: it never held a batch.
                logger.info("ingest log %s: %s, left by an unfinished segment start, removed", self, path.name)
                path.unlink()
            elif match:
                firsts.append(int(match.group(1)))
        firsts.sort()
        if not firsts:
            self._segments = [self._create_segment(0, {})]
            return
        self._segments = [_Segment(first, self._segment_path(first), None, None) for first in firsts]
        newest = self._segments[-1]
        newest.fd = os.open(newest.path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        data = read_all(newest.fd)
        start, records, end, problem = self._scan_segment(newest, data)
        positions = array("Q")
        for record in records:
            batch_sequence, device = self._check_batch(record, newest, newest.first + len(positions))
            positions.append(record.position)
            if device and batch_sequence:
                start[device] = batch_sequence
        newest.positions, newest.end = positions, end
        self._next_offset = newest.first + len(positions)
        self._devices = start
        if problem:
            logger.warning(
                "ingest log %s: %s at byte %d; %d bytes dropped (from there to the end of the file); next offset %d",
                newest.path,
                problem,
                end,
                len(data) - end,
                self._next_offset,
            )
            os.ftruncate(newest.fd, end)
            if self.fsync:
                os.fsync(newest.fd)

    def _index(self, segment: _Segment) -> array:
        """Reads an older segment, first needed after a reopen: where each batch is (under _lock).

        An older segment was complete and synced when the log moved on: any damage in it is an
        error (cutting it would lose batches that were acknowledged, and leave a hole).
        """
        following = self._segments[self._segments.index(segment) + 1]
        if segment.fd is None:
            segment.fd = os.open(segment.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        data = read_all(segment.fd)
        _, records, end, problem = self._scan_segment(segment, data)
        if problem:
            raise CitystreamError(
                f"ingest log segment {segment.path}: {problem} at byte {end}; an older segment cannot be cut, "
                f"so offsets {segment.first + len(records)}..{following.first - 1} cannot be read"
            )
        for i, record in enumerate(records):
            self._check_batch(record, segment, segment.first + i)
        positions = array("Q", (record.position for record in records))
        if segment.first + len(positions) != following.first:
            raise CitystreamError(
                f"ingest log segment {segment.path}: holds offsets {segment.first}..{segment.first + len(positions) - 1} "
                f"but the next segment starts at {following.first}"
            )
        segment.positions = positions
        return positions

    def _scan_segment(self, segment: _Segment, data: bytes) -> tuple[dict[str, int], list[ScannedRecord], int, str]:
        """A segment's start (the devices' sequences), its batch records, where they end and what
        stopped the scan; a segment without a whole start record is an error."""
        header_size = _FORMAT.check_header(data, segment.path)
        if header_size is None:
            raise CitystreamError(f"ingest log segment {segment.path}: the file header is cut short ({len(data)} bytes)")
        records, end, problem = scan_records(data, header_size)
        if not records or records[0].kind != SEGMENT_START_RECORD:
            found = f"a record of type {records[0].kind}" if records else problem or "nothing"
            raise CitystreamError(f"ingest log segment {segment.path}: no segment start record after the file header ({found})")
        first, devices = _decode_segment_start(records[0].payload, f"{segment.path}, byte {records[0].position}")
        if first != segment.first:
            raise CitystreamError(
                f"ingest log segment {segment.path}: its start record says offset {first}, its name {segment.first}"
            )
        return devices, records[1:], end, problem

    @staticmethod
    def _check_batch(record: ScannedRecord, segment: _Segment, expected: int) -> tuple[int, str]:
        """The batch_sequence and device of a batch record read from a segment's file; a record
        that passed its CRC but breaks the log's rules was written by something else, and is an
        error rather than a tail to cut."""
        where = f"ingest log segment {segment.path}, record at byte {record.position}"
        if record.kind != BATCH_RECORD:
            raise CitystreamError(f"{where}: record type {record.kind} where a batch (type {BATCH_RECORD}) was expected")
        offset, batch_sequence, device, _ = _decode_batch_header(record.payload, where)
        if offset != expected:
            raise CitystreamError(f"{where}: offset {offset} where {expected} was expected")
        return batch_sequence, device

    def _close_files(self) -> None:
        for segment in self._segments:
            if segment.fd is not None:
                os.close(segment.fd)
                segment.fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _encode_batch(offset: int, device: bytes, batch_sequence: int, batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    sink.write(_BATCH.pack(offset, batch_sequence, len(device)) + device)
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _decode_batch_header(payload: memoryview, where: str) -> tuple[int, int, str, int]:
    """The offset, batch_sequence and device of a batch record, and where its Arrow stream starts."""
    if len(payload) < _BATCH.size:
        raise CitystreamError(f"{where}: a batch record of {len(payload)} bytes is too short")
    offset, batch_sequence, device_length = _BATCH.unpack_from(payload)
    try:
        device = bytes(payload[_BATCH.size : _BATCH.size + device_length]).decode()
    except UnicodeDecodeError as exc:
        raise CitystreamError(f"{where}: the device name is not UTF-8 ({exc})") from exc
    return offset, batch_sequence, device, _BATCH.size + device_length


def _decode_batch(payload: memoryview, where: str) -> IngestRecord:
    offset, batch_sequence, device, stream_start = _decode_batch_header(payload, where)
    stream = payload[stream_start:]
    try:
        batch = pa.ipc.open_stream(pa.py_buffer(stream)).read_next_batch()
    except (pa.ArrowInvalid, OSError, StopIteration) as exc:
        raise CitystreamError(f"{where}: the batch is not a readable Arrow IPC stream ({exc})") from exc
    return IngestRecord(offset, device, batch_sequence, batch)


def _encode_segment_start(first: int, devices: dict[str, int]) -> bytes:
    parts = [_SEGMENT_START.pack(first, len(devices))]
    for device, sequence in devices.items():
        name = device.encode()
        parts += [_DEVICE_NAME.pack(len(name)), name, _DEVICE_SEQUENCE.pack(sequence)]
    return b"".join(parts)


def _decode_segment_start(payload: memoryview, where: str) -> tuple[int, dict[str, int]]:
    try:
        first, count = _SEGMENT_START.unpack_from(payload)
        position, devices = _SEGMENT_START.size, {}
        for _ in range(count):
            (length,) = _DEVICE_NAME.unpack_from(payload, position)
            position += _DEVICE_NAME.size
            name = bytes(payload[position : position + length]).decode()
            position += length
            (devices[name],) = _DEVICE_SEQUENCE.unpack_from(payload, position)
            position += _DEVICE_SEQUENCE.size
    except (struct.error, UnicodeDecodeError) as exc:
        raise CitystreamError(f"{where}: the segment start record cannot be read ({exc})") from exc
    if position != len(payload):
        raise CitystreamError(f"{where}: the segment start record has {len(payload) - position} bytes too many")
    return first, devices
