"""The on-disk framing shared by citystream's durable logs (the incident log, the ingest log): a
file header, CRC-checked records, the scan that finds where a damaged or unfinished tail begins,
and the file lock that keeps a second writer out.

Layout (little-endian, written with ``struct``)::

    file header   magic (8 bytes), format version (u16)
    record        type (u8), payload length (u32), CRC32 (u32) of the type, the length and
                  the payload, then the payload

The CRC covers the record's type and length as well as its payload, so that a damaged header is
caught like a damaged payload rather than misread as a record of another type or size. What a
type means and what its payload holds is each log's own business.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from engine.errors import CitystreamError

RECORD_HEADER = struct.Struct("<BII")  # record type, payload length, CRC32
MAX_PAYLOAD = 2**32 - 1  # the length is a u32

_FILE_HEADER = struct.Struct("<8sH")  # magic, format version
_RECORD_PREFIX = struct.Struct("<BI")  # record type, payload length
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class LogFormat:
    """The file header of one kind of log: its magic, its format version and how errors name it.

    Example:
        >>> LogFormat(b"CSEXAMPL", 1, "example log").check_header(b"CSEX", "x.log") is None
        True
    """

    magic: bytes
    version: int
    description: str  # e.g. "incident log": "x.log is not an incident log: ..."

    @property
    def header(self) -> bytes:
        return _FILE_HEADER.pack(self.magic, self.version)

    def check_header(self, data: bytes, path: str | Path) -> int | None:
        """The size of the file header at the start of ``data``, or None if ``data`` is only a
        beginning of it (empty, or cut short by a crash while the file was created).

        Raises:
            CitystreamError: ``data`` starts with something else, or with another format version.
        """
        header = self.header
        article = "an" if self.description[:1] in "aeiou" else "a"
        if len(data) < len(header):
            if data != header[: len(data)]:
                raise CitystreamError(f"{path} is not {article} {self.description}: it does not start with {self.magic!r}")
            return None
        magic, version = _FILE_HEADER.unpack_from(data)
        if magic != self.magic:
            raise CitystreamError(
                f"{path} is not {article} {self.description}: it starts with {data[: len(self.magic)]!r}, not {self.magic!r}"
            )
        if version != self.version:
            raise CitystreamError(f"{path}: {self.description} format version {version}; this code reads version {self.version}")
        return len(header)


class ScannedRecord(NamedTuple):
    """A record found by ``scan_records``: its type, where it starts in the file, its payload."""

    kind: int
    position: int
    payload: memoryview


def frame_record(kind: int, payload: bytes) -> bytes:
    """One record, ready to be written: header (type, length, CRC32) and payload."""
    if len(payload) > MAX_PAYLOAD:
        raise CitystreamError(f"a record payload of {len(payload)} bytes is too large; a record holds at most {MAX_PAYLOAD}")
    prefix = _RECORD_PREFIX.pack(kind, len(payload))
    return prefix + _CRC.pack(zlib.crc32(payload, zlib.crc32(prefix))) + payload


def scan_records(data: bytes, start: int) -> tuple[list[ScannedRecord], int, str]:
    """The good records of ``data`` from byte ``start``, where they end, and what stopped the scan.

    The scan stops at the first record that is incomplete or whose CRC does not match: the
    length of a damaged record cannot be trusted, so nothing after it can be read safely. The
    problem is "" when every byte up to the end of ``data`` belongs to a good record.
    """
    view = memoryview(data)
    records: list[ScannedRecord] = []
    position, problem = start, ""
    while position < len(data):
        if len(data) - position < RECORD_HEADER.size:
            problem = "an incomplete record header"
            break
        kind, length, crc = RECORD_HEADER.unpack_from(data, position)
        payload_start = position + RECORD_HEADER.size
        if payload_start + length > len(data):
            problem = f"a record of {length} bytes cut short"
            break
        payload = view[payload_start : payload_start + length]
        if zlib.crc32(payload, zlib.crc32(_RECORD_PREFIX.pack(kind, length))) != crc:
            problem = "a record whose CRC does not match"
            break
        records.append(ScannedRecord(kind, position, payload))
        position = payload_start + length
    return records, position, problem


def read_record(fd: int, position: int, where: str) -> tuple[int, bytes]:
    """The type and payload of the record at byte ``position`` of an open file, CRC checked.

    Raises:
        CitystreamError: the record is incomplete or damaged; ``where`` names the file.
    """
    header = os.pread(fd, RECORD_HEADER.size, position)
    if len(header) < RECORD_HEADER.size:
        raise CitystreamError(f"{where}: the record at byte {position} is cut short (its header has {len(header)} bytes)")
    kind, length, crc = RECORD_HEADER.unpack(header)
    payload = read_exactly(fd, length, position + RECORD_HEADER.size)
    if len(payload) < length:
        raise CitystreamError(f"{where}: the record at byte {position} is cut short ({len(payload)} of {length} bytes)")
    if zlib.crc32(payload, zlib.crc32(_RECORD_PREFIX.pack(kind, length))) != crc:
        raise CitystreamError(f"{where}: the record at byte {position} is damaged (its CRC does not match)")
    return kind, payload


def read_exactly(fd: int, size: int, position: int) -> bytes:
    """``size`` bytes from ``position`` (fewer only at the end of the file)."""
    chunks, done = [], 0
    while done < size:
        chunk = os.pread(fd, size - done, position + done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_all(fd: int) -> bytes:
    """The whole file."""
    return read_exactly(fd, os.fstat(fd).st_size, 0)


def write_at(fd: int, data: bytes, position: int, fsync: bool) -> int:
    """Writes ``data`` at ``position`` (all of it: ``pwrite`` may write less), then syncs if
    ``fsync``; returns the position after it. An ``OSError`` is the caller's to handle."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written
    if fsync:
        os.fsync(fd)
    return position


def lock_exclusive(fd: int) -> bool:
    """Takes the file's exclusive ``flock`` without waiting; False if someone holds it.

    The lock belongs to the open file: it goes with ``os.close`` or the death of the process, so
    a restarted process can take it again. Not on Windows (always True there).
    """
    if sys.platform == "win32":
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def sync_directory(directory: str | Path) -> None:
    """Makes the directory's entries durable (a file created, renamed or removed there)."""
    if sys.platform == "win32":
        return
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
