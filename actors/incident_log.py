"""The incident log of a police gateway: a durable, append-only file of the incidents routed to it,
numbered from 1 without gaps, from which a dispatch console can resume after any sequence number.

Every incident is also kept in memory (a gateway logs hundreds a day). Nothing is ever removed:
there is no retention and no compaction yet, so the file and the memory grow with every incident.

File format (``<directory>/<gateway>.log``, little-endian, framed by ``actors.log_records``)::

    file header   magic b"CSINCLOG" (8 bytes), format version (u16, now 1)
    record        type (u8: 1 = incident, 2 = acknowledgement), payload length (u32),
                  CRC32 (u32) of the type, the length and the payload, then the payload:
                  a serialized ``citystream.v1.Incident``; for an acknowledgement, an Incident
                  holding only ``sequence`` and ``acknowledgement``

The CRC covers the record's type and length as well as its payload, so that a damaged header is
caught like a damaged payload rather than misread as a record of another type or size.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from actors.log_records import LogFormat, frame_record, lock_exclusive, read_all, scan_records, sync_directory, write_at
from engine.errors import CitystreamError, OptionError
from protos.citystream.v1 import dispatch_pb2

logger = logging.getLogger(__name__)

MAGIC = b"CSINCLOG"
FORMAT_VERSION = 1
INCIDENT_RECORD = 1
ACKNOWLEDGEMENT_RECORD = 2
_FORMAT = LogFormat(MAGIC, FORMAT_VERSION, "incident log")
# The gateway id names the file: no separators, no leading dot.
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class IncidentNotFound(CitystreamError, KeyError):
    """No incident with that sequence number or incident id in the gateway's log.

    It is both a ``KeyError`` and a ``CitystreamError``: catch whichever reads better.
    """

    def __init__(
        self, gateway: str, *, sequence: int | None = None, incident_id: str | None = None, last_sequence: int = 0
    ) -> None:
        self.gateway = gateway
        self.sequence = sequence
        self.incident_id = incident_id
        held = f"sequences 1..{last_sequence}" if last_sequence else "no incident yet"
        key = f"sequence {sequence}" if incident_id is None else f"incident_id {incident_id!r}"
        super().__init__(f"gateway {gateway!r}: no incident with {key} in the incident log (it holds {held})")

    def __str__(self) -> str:
        # KeyError.__str__ would print the message in quotes.
        return BaseException.__str__(self)


class IncidentLog:
    """The durable, append-only incident log of one police gateway.

    ``append`` numbers new incidents from 1 without gaps, skips those whose ``incident_id`` is
    already logged (the graph may deliver an incident twice after a recovery) and returns only
    when their records are on disk: one write and one fsync per call (group commit). Opening the
    log recovers it: a record cut short by a crash, or one whose CRC does not match, is cut off
    with everything after it, and a warning says how many bytes were dropped.

    Thread-safe: appends may come from the sink's thread while the gRPC server reads from its
    event loop. Writers are serialized by one lock held across the write and the fsync; the
    in-memory index has a second lock held only for a few list and dict operations, so readers
    never wait for the disk, and they see an incident only once it is durable. Every method
    returns copies: changing a returned message does not change the log.

    Only one ``IncidentLog`` may have a file open at a time (an exclusive ``flock``, on POSIX):
    a second one, in this process or another, raises ``CitystreamError``.

    Args:
        directory: where the file ``<gateway>.log`` lives; created if missing.
        gateway: the gateway's id (letters, digits, ``.``, ``_``, ``-``); it names the file.
        fsync: whether ``append`` and ``acknowledge`` wait for the disk. Turning it off keeps
            what survives a crash of the process, not of the machine; for tests and benchmarks.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory, IncidentLog(directory, "incheon-jung-police") as log:
        ...     fire = dispatch_pb2.Incident(incident_id="fire/songdo/7", district="songdo", kind="fire", severity=4)
        ...     stored = log.append([fire])
        ...     again = log.append([fire])
        ...     taken = log.acknowledge(1, "console-3", officer="Kim")
        ...     [i.sequence for i in stored], again, taken.acknowledgement.console, log.last_sequence
        ([1], [], 'console-3', 1)
    """

    def __init__(self, directory: str | Path, gateway: str, fsync: bool = True) -> None:
        if not isinstance(gateway, str) or not _GATEWAY_NAME.fullmatch(gateway):
            raise OptionError(
                "gateway", gateway, "a name of letters, digits, '.', '_' and '-' that starts with a letter or digit"
            )
        self.gateway = gateway
        self.fsync = fsync
        self.path = Path(directory) / f"{gateway}.log"
        self._write_lock = threading.Lock()  # serializes append, acknowledge and close
        self._lock = threading.Lock()  # guards _incidents and _sequences; never held across I/O
        self._incidents: list[dispatch_pb2.Incident] = []  # index i holds sequence i + 1
        self._sequences: dict[str, int] = {}  # incident_id -> sequence
        self._end = 0  # the end of the last good record: where the next one is written
        self._broken: str | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            self._lock_file(fd)
            self._recover(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        logger.debug("incident log %s opened: %d incidents, %d bytes", self.path, len(self._incidents), self._end)

    # ---- writing ------------------------------------------------------------------------------

    def append(self, incidents: Sequence[dispatch_pb2.Incident]) -> list[dispatch_pb2.Incident]:
        """Logs the incidents not logged yet and returns the stored copies of those, in order.

        An incident whose ``incident_id`` is already in the log, or earlier in the same call, is
        skipped. The others get the next sequence numbers, this gateway's id and ``logged_time``
        (now, the same for the whole call); an ``acknowledgement`` they carry is dropped (only
        ``acknowledge`` records one). The caller's messages are not changed.

        All records of the call go to the file in one write followed by one fsync: only once this
        returns are the incidents durable, and only then do readers see them.

        Raises:
            CitystreamError: an incident without ``incident_id`` (nothing of the call is logged),
                the log is closed, or the write failed (then the log refuses writes until it is
                reopened, which recovers what reached the disk).
        """
        with self._write_lock:
            self._check_writable()
            logged_time = _now()
            first = len(self._incidents) + 1
            new: list[dispatch_pb2.Incident] = []
            batch_ids: set[str] = set()
            for position, incident in enumerate(incidents):
                incident_id = incident.incident_id
                if not incident_id:
                    raise CitystreamError(
                        f"gateway {self.gateway!r}: incident {position} of the batch has no incident_id; every incident needs one"
                    )
                if incident_id in self._sequences or incident_id in batch_ids:
                    continue
                batch_ids.add(incident_id)
                stored = _copy(incident)
                stored.ClearField("acknowledgement")
                stored.sequence = first + len(new)
                stored.gateway = self.gateway
                stored.logged_time.CopyFrom(logged_time)
                new.append(stored)
            if len(new) < len(incidents):
                logger.info(
                    "gateway %s: %d of %d incidents were already logged and skipped",
                    self.gateway,
                    len(incidents) - len(new),
                    len(incidents),
                )
            if not new:
                return []
            self._write(b"".join(frame_record(INCIDENT_RECORD, stored.SerializeToString()) for stored in new))
            with self._lock:
                self._incidents.extend(new)
                self._sequences.update((stored.incident_id, stored.sequence) for stored in new)
        # Stored messages are never changed once published (acknowledge replaces them), so they
        # can be copied outside the locks.
        return [_copy(stored) for stored in new]

    def acknowledge(self, sequence: int, console: str, officer: str = "", note: str = "") -> dispatch_pb2.Incident:
        """Records that ``console`` (and ``officer``) took incident ``sequence``; returns the incident.

        The acknowledgement, with the time it was recorded, is durable when this returns (a
        record of its own, fsynced). Idempotent: an incident already acknowledged keeps its first
        acknowledgement, which is returned unchanged and nothing is written, whoever asks again;
        compare ``acknowledgement.console`` with yours to know whether it was you.

        Raises:
            IncidentNotFound: no incident has that sequence number (a ``KeyError`` and a
                ``CitystreamError``).
            CitystreamError: ``console`` is empty, the log is closed, or the write failed.
        """
        if not console:
            raise CitystreamError(f"gateway {self.gateway!r}: acknowledging incident {sequence} needs the console that took it")
        with self._write_lock:
            self._check_writable()
            current = self._find(sequence)
            if current.HasField("acknowledgement"):
                return _copy(current)
            acknowledgement = dispatch_pb2.Acknowledgement(console=console, officer=officer, note=note)
            acknowledgement.time.CopyFrom(_now())
            record = dispatch_pb2.Incident(sequence=sequence, acknowledgement=acknowledgement)
            self._write(frame_record(ACKNOWLEDGEMENT_RECORD, record.SerializeToString()))
            updated = _copy(current)
            updated.acknowledgement.CopyFrom(acknowledgement)
            with self._lock:
                self._incidents[sequence - 1] = updated
        return _copy(updated)

    def close(self) -> None:
        """Closes the file (and releases it for another ``IncidentLog``); idempotent.

        What was logged stays readable from memory; ``append`` and ``acknowledge`` raise.
        """
        with self._write_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> IncidentLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()

    # ---- reading ------------------------------------------------------------------------------

    def get(self, sequence: int) -> dispatch_pb2.Incident:
        """The incident with this sequence number.

        Raises:
            IncidentNotFound: there is none (a ``KeyError`` and a ``CitystreamError``).
        """
        with self._lock:
            incident = self._find(sequence)
        return _copy(incident)

    def get_by_id(self, incident_id: str) -> dispatch_pb2.Incident:
        """The incident with this ``incident_id``.

        Raises:
            IncidentNotFound: there is none (a ``KeyError`` and a ``CitystreamError``).
        """
        with self._lock:
            sequence = self._sequences.get(incident_id)
            if sequence is None:
                raise IncidentNotFound(self.gateway, incident_id=incident_id, last_sequence=len(self._incidents))
            incident = self._incidents[sequence - 1]
        return _copy(incident)

    def read_after(self, sequence: int, limit: int | None = None) -> list[dispatch_pb2.Incident]:
        """The incidents with a sequence number above ``sequence``, in order; at most ``limit``.

        ``read_after(0)`` starts from the first incident; after the last one it is empty.

        Raises:
            OptionError: ``sequence`` or ``limit`` is negative.
        """
        if sequence < 0:
            raise OptionError("sequence", sequence, "an integer >= 0 (0: from the first incident)")
        if limit is not None and limit < 0:
            raise OptionError("limit", limit, "None (all) or an integer >= 0")
        with self._lock:
            chosen = self._incidents[sequence : None if limit is None else sequence + limit]
        return [_copy(incident) for incident in chosen]

    @property
    def last_sequence(self) -> int:
        """The newest sequence number; 0 while the log is empty."""
        with self._lock:
            return len(self._incidents)

    def __len__(self) -> int:
        with self._lock:
            return len(self._incidents)

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else "open"
        return f"IncidentLog({str(self.path)!r}, {len(self)} incidents, {state})"

    # ---- internals ----------------------------------------------------------------------------

    def _find(self, sequence: int) -> dispatch_pb2.Incident:
        # Callers hold _lock, or _write_lock (only writers change the index).
        if not 1 <= sequence <= len(self._incidents):
            raise IncidentNotFound(self.gateway, sequence=sequence, last_sequence=len(self._incidents))
        return self._incidents[sequence - 1]

    def _check_writable(self) -> None:
        if self._fd is None:
            raise CitystreamError(f"incident log {self.path} is closed")
        if self._broken is not None:
            raise CitystreamError(
                f"incident log {self.path} refuses writes after a failed write ({self._broken}); reopen it to recover"
            )

    def _write(self, data: bytes) -> None:
        """Writes whole records at the end of the last good one, then syncs (writers only)."""
        fd = self._fd
        assert fd is not None
        try:
            end = write_at(fd, data, self._end, self.fsync)
        except OSError as exc:
            # After a failed fsync the page cache cannot be trusted: stop writing, and let a
            # reopen read what really is on disk.
            self._broken = f"{type(exc).__name__}: {exc}"
            try:
                os.ftruncate(fd, self._end)
            except OSError:
                pass
            raise CitystreamError(
                f"incident log {self.path}: the write failed ({exc}); this call's records are not logged"
            ) from exc
        self._end = end

    def _lock_file(self, fd: int) -> None:
        if not lock_exclusive(fd):
            raise CitystreamError(f"incident log {self.path} is already open in another IncidentLog (this or another process)")

    def _recover(self, fd: int) -> None:
        """Reads every record into memory and cuts off a damaged or unfinished tail."""
        data = read_all(fd)
        header = _FORMAT.header
        header_size = _FORMAT.check_header(data, self.path)
        if header_size is None:
            if data:
                logger.warning("incident log %s: its file header is incomplete (%d bytes); written again", self.path, len(data))
            os.pwrite(fd, header, 0)
            os.ftruncate(fd, len(header))
            self._sync(fd, directory=True)
            self._end = len(header)
            return
        records, offset, problem = scan_records(data, header_size)
        for record in records:
            self._replay(record.kind, bytes(record.payload), record.position)
        if problem:
            logger.warning(
                "incident log %s: %s at byte %d; %d bytes dropped (from there to the end of the file); it ends at sequence %d",
                self.path,
                problem,
                offset,
                len(data) - offset,
                len(self._incidents),
            )
            os.ftruncate(fd, offset)
            self._sync(fd)
        self._end = offset

    def _replay(self, kind: int, payload: bytes, offset: int) -> None:
        """Applies one record read at open; a record that passed its CRC but breaks the log's
        rules was written by something else, and is an error rather than a tail to cut."""
        where = f"{self.path}, record at byte {offset}"
        if kind not in (INCIDENT_RECORD, ACKNOWLEDGEMENT_RECORD):
            raise CitystreamError(f"{where}: unknown record type {kind} (1 = incident, 2 = acknowledgement)")
        message = dispatch_pb2.Incident()
        try:
            message.ParseFromString(payload)
        except DecodeError as exc:
            raise CitystreamError(f"{where}: not an Incident message ({exc})") from exc
        if kind == INCIDENT_RECORD:
            expected = len(self._incidents) + 1
            if message.sequence != expected:
                raise CitystreamError(f"{where}: sequence {message.sequence} where {expected} was expected")
            if not message.incident_id or message.incident_id in self._sequences:
                raise CitystreamError(f"{where}: incident_id {message.incident_id!r} is empty or logged twice")
            self._incidents.append(message)
            self._sequences[message.incident_id] = message.sequence
            return
        if not 1 <= message.sequence <= len(self._incidents):
            raise CitystreamError(f"{where}: acknowledges sequence {message.sequence}, which is not logged before it")
        acknowledged = self._incidents[message.sequence - 1]
        if not acknowledged.HasField("acknowledgement"):  # the first acknowledgement wins
            acknowledged.acknowledgement.CopyFrom(message.acknowledgement)

    def _sync(self, fd: int, directory: bool = False) -> None:
        if not self.fsync:
            return
        os.fsync(fd)
        if directory:  # a new file's directory entry must be durable too
            sync_directory(self.path.parent)


def _copy(incident: dispatch_pb2.Incident) -> dispatch_pb2.Incident:
    copy = dispatch_pb2.Incident()
    copy.CopyFrom(incident)
    return copy


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp
