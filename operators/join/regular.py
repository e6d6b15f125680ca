"""Regular join: the unbounded equi-join of two append-only keyed streams, as Flink SQL's; each
pair is emitted once, when its second row arrives (state kept forever, or for a TTL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import OptionError
from engine.expr import Expr
from engine.operator import Collector, Operator
from engine.partitioning import hash_keys
from engine.timeutil import MIN_WATERMARK, clamp, time_values
from operators.keys import hash_matches

REGULAR_JOIN_TYPES = ("inner",)
_MAX_CHUNKS = 16  # of a side's run, before its chunks are combined into one


def equi_pairs(left: pa.Table, right: pa.Table, left_keys: list[str], right_keys: list[str]) -> tuple[pa.Array, pa.Array]:
    """Row indices (left, right) of every pair with equal keys (a null key matches nothing).

    Only the keys and row numbers go through the hash join (so payload columns of any type,
    lists included, are fine). The right table is the build side: pass the smaller one there.
    """
    n = len(left_keys)
    left_part = pa.table(
        [left.column(k) for k in left_keys] + [pa.array(np.arange(left.num_rows, dtype=np.int64))],
        names=[f"__k{i}" for i in range(n)] + ["__l"],
    )
    right_part = pa.table(
        [right.column(k) for k in right_keys] + [pa.array(np.arange(right.num_rows, dtype=np.int64))],
        names=[f"__rk{i}" for i in range(n)] + ["__r"],
    )
    joined = left_part.join(
        right_part, [f"__k{i}" for i in range(n)], [f"__rk{i}" for i in range(n)], join_type="inner", use_threads=False
    )
    return joined.column("__l").combine_chunks(), joined.column("__r").combine_chunks()


def joined_batch(
    left: pa.Table,
    right: pa.Table,
    left_rows: pa.Array,
    right_rows: pa.Array,
    right_columns: list[tuple[str, str]],
    schema: pa.Schema,
) -> pa.RecordBatch:
    """The output rows of the given pairs: every left column, then the right's ``right_columns``."""
    taken_left = left.take(left_rows)
    taken_right = right.select([name for name, _ in right_columns]).take(right_rows)
    arrays = [c.combine_chunks() for c in taken_left.columns + taken_right.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def residual_mask(condition: Expr, batch: pa.RecordBatch) -> pa.Array:
    """Where the residual condition holds (null counts as false, as in SQL)."""
    result = condition.evaluate(batch)
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    return pc.fill_null(result, False)


@dataclass
class _Run:
    """Buffered rows of one side, indexed by key: the rows' key hashes sorted (``hashes``) and
    where each is in the table (``order``), so a probe is a binary search, not a scan."""

    table: pa.Table
    row_hashes: np.ndarray  # per row, in table order
    hashes: np.ndarray  # sorted
    order: np.ndarray  # table row of each sorted hash
    oldest: int  # earliest event time (MIN_WATERMARK when times are not tracked)

    @staticmethod
    def of(table: pa.Table, row_hashes: np.ndarray, oldest: int) -> _Run:
        order = np.argsort(row_hashes, kind="stable")
        return _Run(table, row_hashes, row_hashes[order], order, oldest)


class _SideBuffer:
    """The rows of one side, in runs indexed by the hash of their keys (a log-structured
    merge: a new batch is a run; runs of similar size merge, so there are O(log n) of them).

    Probing a batch costs O(batch x log(buffer)) per run instead of a scan of the buffer, so
    a join whose state grows (Nexmark q3) stays linear overall. Rows with a null key are not
    kept: they match nothing. With a TTL each run knows its oldest time; expiring rewrites
    only the runs that hold expired rows.
    """

    def __init__(self, schema: pa.Schema, keys: list[str], time_column: str | None) -> None:
        self.schema = schema
        self.keys = keys
        self.time_column = time_column  # None: no TTL, times are not tracked
        self.runs: list[_Run] = []

    @property
    def num_rows(self) -> int:
        return sum(run.table.num_rows for run in self.runs)

    def table(self) -> pa.Table:
        """Every buffered row, as one table."""
        return pa.concat_tables([run.table for run in self.runs]) if self.runs else self.schema.empty_table()

    def add(self, table: pa.Table, row_hashes: np.ndarray) -> None:
        self.runs.append(_Run.of(table, row_hashes, self._oldest_of(table)))
        while len(self.runs) > 1 and self.runs[-1].table.num_rows * 2 >= self.runs[-2].table.num_rows:
            newer, older = self.runs.pop(), self.runs.pop()
            # Listed together, zero-copy, until the run has many chunks: copying rows at every
            # merge costs more than probing, but a take from thousands of chunks costs more still.
            merged = pa.concat_tables([older.table, newer.table])
            if merged.column(0).num_chunks > _MAX_CHUNKS:
                merged = merged.combine_chunks()
            hashes = np.concatenate([older.row_hashes, newer.row_hashes])
            self.runs.append(_Run.of(merged, hashes, min(older.oldest, newer.oldest)))

    def probe(self, row_hashes: np.ndarray) -> list[tuple[_Run, np.ndarray, np.ndarray]]:
        """For each run, (run, probe rows, run rows) of the pairs whose key hashes are equal."""
        found = []
        for run in self.runs:
            probe_rows, rows = hash_matches(run.hashes, run.order, row_hashes)
            if len(rows):
                found.append((run, probe_rows, rows))
        return found

    def expire(self, limit: int) -> None:
        """Drops the rows whose event time is before ``limit``."""
        assert self.time_column is not None
        kept = []
        for run in self.runs:
            if run.oldest < limit:
                alive = pc.greater_equal(time_values(run.table.column(self.time_column)), limit)
                mask = alive.to_numpy(zero_copy_only=False)
                table = run.table.filter(alive)
                if table.num_rows == 0:
                    continue
                run = _Run.of(table, run.row_hashes[mask], self._oldest_of(table))
            kept.append(run)
        self.runs = kept

    def replace(self, table: pa.Table) -> None:
        """Sets the whole buffer to ``table`` (a restored snapshot)."""
        self.runs = []
        if table.num_rows:
            self.add(table.combine_chunks(), hash_keys(table, self.keys))

    def _oldest_of(self, table: pa.Table) -> int:
        if self.time_column is None or table.num_rows == 0:
            return MIN_WATERMARK
        oldest = pc.min(time_values(table.column(self.time_column)))
        return oldest.as_py() if oldest.is_valid else MIN_WATERMARK


def _valid_keys(table: pa.Table, keys: list[str]) -> pa.Array | None:
    """Rows whose keys are all non-null, or None when every row's are."""
    if not any(table.column(k).null_count for k in keys):
        return None
    mask = pc.is_valid(table.column(keys[0]))
    for k in keys[1:]:
        mask = pc.and_(mask, pc.is_valid(table.column(k)))
    return mask


def _keys_equal(
    left: pa.Table, right: pa.Table, left_keys: list[str], right_keys: list[str], left_rows: np.ndarray, right_rows: np.ndarray
) -> np.ndarray | None:
    """Which pairs of equal hashes have equal keys; None when all do."""
    same = None
    for lk, rk in zip(left_keys, right_keys, strict=True):
        equal = pc.equal(left.column(lk).take(pa.array(left_rows)), right.column(rk).take(pa.array(right_rows)))
        same = equal if same is None else pc.and_(same, equal)
    assert same is not None
    if pc.all(same).as_py():
        return None
    return same.to_numpy(zero_copy_only=False)


class RegularJoin(Operator):
    """Unbounded inner equi-join on keys; input 0 is left, input 1 right.

    A batch is joined with every buffered row of the other side (pairs with equal keys that
    satisfy the residual ``condition``), then buffered on its own side. Without ``ttl_ms`` the
    state grows without bound; with it, rows whose event time is older than watermark - ttl
    are dropped. Watermarks pass through; the output has no event time of its own.
    """

    def __init__(
        self,
        left_keys: list[str],
        right_keys: list[str],
        right_columns: list[tuple[str, str]],
        left_schema: pa.Schema,
        right_schema: pa.Schema,
        schema: pa.Schema,
        condition: Expr | None = None,
        ttl_ms: int | None = None,
        left_time: str | None = None,
        right_time: str | None = None,
        how: str = "inner",
    ) -> None:
        if how not in REGULAR_JOIN_TYPES:
            raise OptionError("how", how, " or ".join(repr(h) for h in REGULAR_JOIN_TYPES))
        if ttl_ms is not None and (left_time is None or right_time is None):
            raise OptionError("ttl_ms", ttl_ms, "None, unless left_time and right_time name the sides' event-time columns")
        self.keys = (left_keys, right_keys)
        self.right_columns = right_columns
        self.schema = schema
        self.condition = condition
        self.ttl = ttl_ms
        timed = ttl_ms is not None
        self.buffers = (
            _SideBuffer(left_schema, left_keys, left_time if timed else None),
            _SideBuffer(right_schema, right_keys, right_time if timed else None),
        )
        self.watermark = MIN_WATERMARK

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if batch.num_rows == 0:
            return
        own, other = self.buffers[input_index], self.buffers[1 - input_index]
        if not batch.schema.equals(own.schema):
            batch = batch.cast(own.schema)  # e.g. a field declared nullable: buffered tables must concatenate
        table = pa.Table.from_batches([batch])
        keys = self.keys[input_index]
        valid = _valid_keys(table, keys)
        if valid is not None:
            table = table.filter(valid)  # a null key matches nothing, now or later
        if table.num_rows == 0:
            return
        row_hashes = hash_keys(table, keys)
        for run, batch_rows, buffered_rows in other.probe(row_hashes):
            # Equal hashes; the keys themselves decide (a 64-bit collision is rare, not impossible).
            same = _keys_equal(table, run.table, keys, self.keys[1 - input_index], batch_rows, buffered_rows)
            if same is not None:
                batch_rows, buffered_rows = batch_rows[same], buffered_rows[same]
            if len(batch_rows) == 0:
                continue
            batch_index, buffered_index = pa.array(batch_rows), pa.array(buffered_rows)
            if input_index == 0:
                result = joined_batch(table, run.table, batch_index, buffered_index, self.right_columns, self.schema)
            else:
                result = joined_batch(run.table, table, buffered_index, batch_index, self.right_columns, self.schema)
            if self.condition is not None:
                result = result.filter(residual_mask(self.condition, result))
            out.emit(result)
        own.add(table, row_hashes)

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        self.watermark = watermark
        if self.ttl is not None:
            limit = clamp(watermark - self.ttl)
            for buffer in self.buffers:
                buffer.expire(limit)
        return watermark

    def snapshot(self) -> Any:
        """``{"left": table, "right": table, "watermark": int}``: every buffered row."""
        return {"left": self.buffers[0].table(), "right": self.buffers[1].table(), "watermark": self.watermark}

    def restore(self, state: Any) -> None:
        self.buffers[0].replace(state["left"])
        self.buffers[1].replace(state["right"])
        self.watermark = state["watermark"]
