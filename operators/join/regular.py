"""Regular join: the unbounded equi-join of two append-only keyed streams, as Flink SQL's; each
pair is emitted once, when its second row arrives (state kept forever, or for a TTL)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import OptionError
from engine.expr import Expr
from engine.operator import Collector, Operator
from engine.timeutil import MIN_WATERMARK, clamp, time_values

REGULAR_JOIN_TYPES = ("inner",)

# A side's pending tables are merged into one when there are more than this many, and into
# the side's main table once they hold a quarter of its rows (and at least _MERGE_ROWS).
_MAX_PENDING = 16
_MERGE_ROWS = 4096


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


class _SideBuffer:
    """The rows of one side: a main table plus a few small pending ones, merged on size.

    With a TTL, the main table is kept sorted by event time, so that expiring rows is a
    binary search and a slice; each pending table carries its oldest time.
    """

    def __init__(self, schema: pa.Schema, time_column: str | None) -> None:
        self.schema = schema
        self.time_column = time_column  # None: no TTL, times are not tracked
        self.main = schema.empty_table()
        self.main_times = np.empty(0, dtype=np.int64)
        self.pending: list[tuple[pa.Table, int]] = []
        self.pending_rows = 0

    @property
    def num_rows(self) -> int:
        return self.main.num_rows + self.pending_rows

    def table(self) -> pa.Table:
        """Every buffered row, as one table (zero-copy: the chunks are only listed together)."""
        if not self.pending:
            return self.main
        return pa.concat_tables([self.main] + [t for t, _ in self.pending])

    def add(self, table: pa.Table) -> None:
        oldest = self._oldest_of(table)
        self.pending.append((table, oldest))
        self.pending_rows += table.num_rows
        if self.pending_rows >= max(_MERGE_ROWS, self.main.num_rows // 4):
            self._merge()
        elif len(self.pending) > _MAX_PENDING:
            merged = pa.concat_tables([t for t, _ in self.pending]).combine_chunks()
            self.pending = [(merged, min(m for _, m in self.pending))]

    def expire(self, limit: int) -> None:
        """Drops the rows whose event time is before ``limit``."""
        assert self.time_column is not None
        if self.main_times.size and self.main_times[0] < limit:
            cut = int(np.searchsorted(self.main_times, limit, side="left"))
            self.main, self.main_times = self.main.slice(cut), self.main_times[cut:]
            # A slice keeps the dropped rows' memory alive: copy once most of the table is gone.
            if cut > self.main.num_rows:
                self.main = self.main.take(pa.array(np.arange(self.main.num_rows, dtype=np.int64)))
                self.main_times = self.main_times.copy()
        if any(oldest < limit for _, oldest in self.pending):
            kept = []
            for table, oldest in self.pending:
                if oldest < limit:
                    table = table.filter(pc.greater_equal(time_values(table.column(self.time_column)), limit))
                    oldest = self._oldest_of(table)
                if table.num_rows:
                    kept.append((table, oldest))
            self.pending = kept
            self.pending_rows = sum(t.num_rows for t, _ in kept)

    def replace(self, table: pa.Table) -> None:
        """Sets the whole buffer to ``table`` (a restored snapshot)."""
        self.main, self.main_times, self.pending, self.pending_rows = self.schema.empty_table(), self.main_times[:0], [], 0
        if table.num_rows:
            self.add(table)
            self._merge()

    def _merge(self) -> None:
        merged = pa.concat_tables([self.main] + [t for t, _ in self.pending])
        if self.time_column is not None:
            merged = merged.sort_by(self.time_column)  # sort_by copies: the memory of expired rows goes
            self.main_times = time_values(merged.column(self.time_column)).to_numpy()
        self.main = merged.combine_chunks()
        self.pending, self.pending_rows = [], 0

    def _oldest_of(self, table: pa.Table) -> int:
        if self.time_column is None or table.num_rows == 0:
            return MIN_WATERMARK
        oldest = pc.min(time_values(table.column(self.time_column)))
        return oldest.as_py() if oldest.is_valid else MIN_WATERMARK


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
            _SideBuffer(left_schema, left_time if timed else None),
            _SideBuffer(right_schema, right_time if timed else None),
        )
        self.watermark = MIN_WATERMARK

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if batch.num_rows == 0:
            return
        own, other = self.buffers[input_index], self.buffers[1 - input_index]
        if not batch.schema.equals(own.schema):
            batch = batch.cast(own.schema)  # e.g. a field declared nullable: buffered tables must concatenate
        table = pa.Table.from_batches([batch])
        if other.num_rows:
            buffered = other.table()
            # The buffer is probed, the (smaller) batch is the hash join's build side.
            buffered_rows, batch_rows = equi_pairs(buffered, table, self.keys[1 - input_index], self.keys[input_index])
            if len(batch_rows):
                if input_index == 0:
                    result = joined_batch(table, buffered, batch_rows, buffered_rows, self.right_columns, self.schema)
                else:
                    result = joined_batch(buffered, table, buffered_rows, batch_rows, self.right_columns, self.schema)
                if self.condition is not None:
                    result = result.filter(residual_mask(self.condition, result))
                out.emit(result)
        own.add(table)

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
