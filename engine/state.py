"""The codec of operator and source state in checkpoints: small state as msgpack, tabular
state (Arrow tables, batches, arrays) as Arrow IPC streams kept beside it.

``encode_state`` walks what ``snapshot()`` returned. Python scalars, strings, bytes, lists,
tuples (restored as lists), dicts, sets and numpy arrays are packed into msgpack at once, so an
operator may go on changing its own lists and arrays after the snapshot; Arrow objects are
immutable, so they are only referenced then and written later (off the task's thread).
Integers beyond 64 bits (numpy's random generator states have 128-bit ones) are kept exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import pyarrow as pa

from engine.errors import CitystreamError

# msgpack extension codes.
_TABLE = 1  # payload: msgpack [index into the tables, what it was: "table" | "batch" | "array" | "chunked"]
_NDARRAY = 2  # payload: msgpack [dtype str, shape, raw bytes (C order)]
_BIG_INT = 3  # payload: the integer in decimal
_SET = 4  # payload: msgpack list of the members
_TUPLE_KEYS = 5  # payload: msgpack list of [key, value] pairs of a dict whose keys are not all str/int


class StateError(CitystreamError):
    """State that cannot be checkpointed, or checkpoint bytes that cannot be read back."""


@dataclass
class EncodedState:
    """One task's state, ready to be written: msgpack bytes and the Arrow tables they refer to."""

    small: bytes
    tables: list[pa.Table] = field(default_factory=list)

    def write_tables(self) -> tuple[bytes, list[tuple[int, int]]]:
        """The tables as one blob of consecutive Arrow IPC streams, and each one's (offset, length)."""
        sink = pa.BufferOutputStream()
        spans: list[tuple[int, int]] = []
        for table in self.tables:
            start = sink.tell()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            spans.append((start, sink.tell() - start))
        return sink.getvalue().to_pybytes(), spans


def encode_state(value: Any, where: str = "state") -> EncodedState:
    """Packs ``value`` (see the module docstring for what it may hold).

    Raises:
        StateError: ``value`` holds something else; the message names the path to it.
    """
    tables: list[pa.Table] = []

    def default(item: Any) -> Any:
        if isinstance(item, pa.Table | pa.RecordBatch | pa.Array | pa.ChunkedArray):
            tables.append(_as_table(item))
            return msgpack.ExtType(_TABLE, msgpack.packb([len(tables) - 1, _arrow_kind(item)]))
        if isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise StateError(f"{where}: a numpy array of Python objects cannot be checkpointed; use an Arrow array")
            data = np.ascontiguousarray(item)
            return msgpack.ExtType(_NDARRAY, msgpack.packb([data.dtype.str, list(data.shape), data.tobytes()]))
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, int):  # only those msgpack cannot hold come here
            return msgpack.ExtType(_BIG_INT, str(item).encode())
        if isinstance(item, set | frozenset):
            return msgpack.ExtType(_SET, pack(sorted(item, key=repr)))
        raise StateError(
            f"{where}: cannot checkpoint a {type(item).__name__} ({item!r:.80}); "
            "use numbers, strings, bytes, lists, dicts, sets, numpy or Arrow data"
        )

    def prepare(item: Any) -> Any:
        # Dicts with keys msgpack cannot hold (tuples, None) become an extension of pairs.
        if isinstance(item, dict):
            if all(isinstance(k, str | int) and not isinstance(k, bool) for k in item):
                return {k: prepare(v) for k, v in item.items()}
            pairs = [[prepare(k), prepare(v)] for k, v in item.items()]
            return msgpack.ExtType(_TUPLE_KEYS, pack(pairs))
        if isinstance(item, list | tuple):
            return [prepare(v) for v in item]
        return item

    def pack(item: Any) -> bytes:
        # A packer per call: ``default`` packs nested values, and a packer is not re-entrant.
        return msgpack.packb(prepare(item), default=default, use_bin_type=True)

    try:
        small = pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StateError(f"{where}: {exc}") from exc
    return EncodedState(small, tables)


def decode_state(small: bytes, tables: list[pa.Table]) -> Any:
    """The value ``encode_state`` packed, with its tables (as read by ``read_tables``)."""

    def ext_hook(code: int, data: bytes) -> Any:
        if code == _TABLE:
            index, kind = msgpack.unpackb(data)
            return _from_table(tables[index], kind)
        if code == _NDARRAY:
            dtype, shape, raw = msgpack.unpackb(data)
            return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
        if code == _BIG_INT:
            return int(data.decode())
        if code == _SET:
            return {_hashable(member) for member in _unpack(data)}
        if code == _TUPLE_KEYS:
            return {_hashable(k): v for k, v in _unpack(data)}
        raise StateError(f"checkpoint state with an unknown extension type {code}")

    def _unpack(data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=ext_hook, strict_map_key=False, raw=False)

    try:
        return _unpack(small)
    except (ValueError, TypeError, msgpack.UnpackException, IndexError) as exc:
        raise StateError(f"checkpoint state cannot be read: {exc}") from exc


def read_tables(blob: bytes | pa.Buffer, spans: list[tuple[int, int]]) -> list[pa.Table]:
    """The tables of a blob ``EncodedState.write_tables`` made (zero-copy from ``blob``)."""
    buffer = blob if isinstance(blob, pa.Buffer) else pa.py_buffer(blob)
    tables = []
    for offset, length in spans:
        if offset + length > buffer.size:
            raise StateError(f"checkpoint table at {offset} (+{length}) lies beyond the end of its file ({buffer.size} bytes)")
        with pa.ipc.open_stream(buffer.slice(offset, length)) as reader:
            tables.append(reader.read_all())
    return tables


def _as_table(item: pa.Table | pa.RecordBatch | pa.Array | pa.ChunkedArray) -> pa.Table:
    if isinstance(item, pa.Table):
        return item
    if isinstance(item, pa.RecordBatch):
        return pa.Table.from_batches([item])
    return pa.table({"values": item})


def _arrow_kind(item: Any) -> str:
    if isinstance(item, pa.Table):
        return "table"
    if isinstance(item, pa.RecordBatch):
        return "batch"
    return "array" if isinstance(item, pa.Array) else "chunked"


def _from_table(table: pa.Table, kind: str) -> Any:
    if kind == "table":
        return table
    if kind == "batch":
        return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], table.schema)
    column = table.column(0)
    return column.combine_chunks() if kind == "array" else column


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def tables_state(tables: list[pa.Table]) -> pa.Table | None:
    """An operator's list of buffered tables as one table for a snapshot (None for an empty
    list). Fine for buffers the operator concatenates before it reads them: the restored
    buffer ``tables_of_state`` gives holds the same rows in the same order."""
    return pa.concat_tables(tables) if tables else None


def tables_of_state(table: pa.Table | None) -> list[pa.Table]:
    """The buffer ``tables_state`` packed: one table, or none."""
    return [] if table is None else [table]


def roundtrip(value: Any) -> Any:
    """``value`` through the codec and back, as a checkpoint would: for tests of snapshots."""
    encoded = encode_state(value)
    blob, spans = encoded.write_tables()
    return decode_state(encoded.small, read_tables(blob, spans))
