"""Partitioning of an edge between tasks, and the key hash that decides hash partitions.

The hash is computed from the values' bytes (no Python ``hash()``, which is salted per
process), so the same key goes to the same task in every process, run and batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_STRING_PRIME = np.uint64(0x100000001B3)
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Forward:
    """Task i sends to task i of the next operator (same parallelism, no copy, may fuse)."""


@dataclass(frozen=True)
class Hash:
    """Rows go to the task chosen by the hash of their key columns.

    ``placement`` pins values of a single key to tasks, ``((value, task), ...)``: one task per
    district, say, where a hash could put two districts on one task. Other values are hashed.
    """

    keys: tuple[str, ...]
    placement: tuple[tuple[object, int], ...] = ()

    def split(self, batch: pa.RecordBatch, parts: int) -> list[pa.RecordBatch]:
        """The batch's rows for each of ``parts`` tasks (some may be empty)."""
        if parts == 1:
            return [batch]
        targets = partition_of(batch, self.keys, parts)
        if self.placement:
            values = pa.array([value for value, _ in self.placement], type=batch.schema.field(self.keys[0]).type)
            positions = pc.index_in(batch.column(self.keys[0]), value_set=values)
            placed = positions.is_valid().to_numpy(zero_copy_only=False)
            if placed.any():
                tasks = np.array([task for _, task in self.placement], dtype=np.int64)
                targets[placed] = tasks[positions.to_numpy(zero_copy_only=False)[placed].astype(np.int64)]
        return _split_by_targets(batch, targets, parts)


@dataclass(frozen=True)
class Broadcast:
    """Every row goes to every task of the next operator."""


@dataclass(frozen=True)
class Rebalance:
    """Batches go round-robin to the tasks of the next operator."""


Partitioning = Forward | Hash | Broadcast | Rebalance


def _mix(h: np.ndarray) -> np.ndarray:
    # splitmix64 finaliser: spreads every input bit over the output.
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _hash_strings(array: pa.Array) -> np.ndarray:
    # A polynomial hash over the UTF-8 bytes of each value, vectorised with numpy:
    # h(s) = sum(b_i * P^(len-1-i)) mod 2^64, computed with reduceat over the data buffer.
    array = array.cast(pa.large_string()) if not pa.types.is_large_string(array.type) else array
    offsets_buf, data_buf = array.buffers()[1], array.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    result = np.zeros(len(array), dtype=np.uint64)
    if end > start and data_buf is not None:
        data = np.frombuffer(data_buf, dtype=np.uint8)[start:end].astype(np.uint64)
        # Power of P for each byte: its distance from the end of its own string.
        owner = np.repeat(np.arange(len(array)), lengths)
        distance = (offsets[1:] - start)[owner] - 1 - np.arange(end - start)
        max_len = int(lengths.max())
        powers = np.ones(max_len, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i in range(1, max_len):
                powers[i] = powers[i - 1] * _STRING_PRIME
            weighted = data * powers[distance]
        nonempty = lengths > 0
        sums = np.add.reduceat(weighted, (offsets[:-1] - start)[nonempty])
        result[nonempty] = sums
    return result + lengths.astype(np.uint64) + np.uint64(1)


def _hash_column(array: pa.Array) -> np.ndarray:
    data_type = array.type
    if pa.types.is_dictionary(data_type):
        array = array.cast(data_type.value_type)
        data_type = array.type
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        # Keys repeat (districts, cameras): hash each distinct value once.
        encoded = pc.dictionary_encode(array)
        dictionary_hashes = _hash_strings(encoded.dictionary)
        indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        values = dictionary_hashes[indices] if len(dictionary_hashes) else np.zeros(len(array), np.uint64)
    elif pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        values = _hash_strings(array.cast(pa.large_binary()).view(pa.large_string()))
    elif pa.types.is_boolean(data_type):
        values = array.cast(pa.uint8()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
    elif pa.types.is_floating(data_type):
        values = array.cast(pa.float64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
    else:  # integers, timestamps, dates, durations: their integer value
        values = array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
    hashed = _mix(values)
    if array.null_count:
        nulls = array.is_null().to_numpy(zero_copy_only=False)
        hashed[nulls] = _NULL_HASH
    return hashed


def hash_keys(batch: pa.RecordBatch | pa.Table, keys: tuple[str, ...] | list[str]) -> np.ndarray:
    """A 64-bit hash per row of the key columns, the same in every process."""
    combined = np.zeros(batch.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in keys:
            column = batch.column(name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            combined = _mix(combined * np.uint64(31) + _hash_column(column))
    return combined


def split_by_hash(batch: pa.RecordBatch, keys: tuple[str, ...], parts: int) -> list[pa.RecordBatch]:
    """Splits a batch into ``parts`` batches by the hash of its keys (some may be empty)."""
    if parts == 1:
        return [batch]
    return _split_by_targets(batch, partition_of(batch, keys, parts), parts)


def _split_by_targets(batch: pa.RecordBatch, targets: np.ndarray, parts: int) -> list[pa.RecordBatch]:
    order = np.argsort(targets, kind="stable")
    ordered = batch.take(pa.array(order))
    bounds = np.searchsorted(targets[order], np.arange(parts + 1))
    return [ordered.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i])) for i in range(parts)]


def partition_of(batch: pa.RecordBatch, keys: tuple[str, ...], parts: int) -> np.ndarray:
    """The target partition of every row."""
    return (hash_keys(batch, keys) % np.uint64(parts)).astype(np.int64)
