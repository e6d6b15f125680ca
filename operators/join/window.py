"""Window join, as Flink SQL's: rows of two windowed streams joined per window and key when the
watermark reaches the window's end - 1 ms; rows of windows that have fired go to late outputs."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import OptionError
from engine.expr import Expr
from engine.operator import LATE, Collector, Operator
from engine.timeutil import MIN_WATERMARK, clamp
from operators.join.interval import LATE_RIGHT
from operators.join.regular import equi_pairs, joined_batch, residual_mask

WINDOW_JOIN_TYPES = ("inner", "left", "right", "full")

_MAX_TABLES = 16  # tables kept per window and side before they are merged into one


def window_millis(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A timestamp column (of any unit) as int64 epoch milliseconds."""
    data_type = column.type
    if data_type.unit != "ms":
        column = pc.cast(column, pa.timestamp("ms", data_type.tz), safe=False)
    return column.cast(pa.int64())


class WindowJoin(Operator):
    """Joins the rows of the same window (start, end) and keys, with an optional residual
    condition, when the window is complete; input 0 is left, input 1 right.

    ``how`` is inner, left, right or full: unmatched rows of an outer side are emitted padded
    with nulls. An unmatched right row takes the left's key, window (and, when given in
    ``left_from_right``, event-time) columns from its own, so none of those is null. A row that
    comes for a window that has fired (or with a null window end) goes to ``late`` (left) or
    ``late_right``.

    ``right_columns`` are the right columns that go out, as (column, output name). They
    usually leave out the right's keys and window (equal to the left's on a match); when they
    include them (``Stream.window_join(keep_right_keys=True)``), those are the right row's own
    values, null for an unmatched left row, so that the right's key reads as SQL's.
    """

    def __init__(
        self,
        how: str,
        left_keys: list[str],
        right_keys: list[str],
        left_window: tuple[str, str],
        right_window: tuple[str, str],
        right_columns: list[tuple[str, str]],
        left_from_right: list[tuple[str, str]],
        left_schema: pa.Schema,
        right_schema: pa.Schema,
        schema: pa.Schema,
        condition: Expr | None = None,
    ) -> None:
        if how not in WINDOW_JOIN_TYPES:
            raise OptionError("how", how, " or ".join(repr(h) for h in WINDOW_JOIN_TYPES))
        self.how = how
        self.join_keys = ([*left_window, *left_keys], [*right_window, *right_keys])
        self.ends = (left_window[1], right_window[1])
        self.right_columns = right_columns
        self.left_from_right = dict(left_from_right)
        self.schemas = (left_schema, right_schema)
        self.schema = schema
        self.condition = condition
        # Per side: window end (ms) -> the rows of the windows that end there.
        self.buffers: tuple[dict[int, list[pa.Table]], dict[int, list[pa.Table]]] = ({}, {})
        self.watermark = MIN_WATERMARK

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if batch.num_rows == 0:
            return
        if not batch.schema.equals(self.schemas[input_index]):
            batch = batch.cast(self.schemas[input_index])  # e.g. a field declared nullable: tables must concatenate
        ends = window_millis(batch.column(self.ends[input_index]))
        late = pc.is_null(ends)
        if self.watermark != MIN_WATERMARK:
            # Fired already: end - 1 <= watermark.
            late = pc.or_kleene(late, pc.less_equal(ends, clamp(self.watermark + 1)))
        if pc.any(late).as_py():
            out.emit_to(LATE if input_index == 0 else LATE_RIGHT, batch.filter(late))
            on_time = pc.invert(late)
            batch, ends = batch.filter(on_time), ends.filter(on_time)
            if batch.num_rows == 0:
                return
        self._buffer(input_index, pa.Table.from_batches([batch]), ends.to_numpy())

    def _buffer(self, side: int, table: pa.Table, ends: np.ndarray) -> None:
        """Files the rows under their window ends (one slice per distinct end, no row loop)."""
        store = self.buffers[side]
        lowest, highest = int(ends.min()), int(ends.max())
        if lowest == highest:
            slices = [(lowest, table)]
        else:
            order = np.argsort(ends, kind="stable")
            sorted_ends = ends[order]
            table = table.take(pa.array(order))
            bounds = [0, *(np.flatnonzero(np.diff(sorted_ends)) + 1).tolist(), len(sorted_ends)]
            slices = [(int(sorted_ends[a]), table.slice(a, b - a)) for a, b in itertools.pairwise(bounds)]
        for end, rows in slices:
            tables = store.setdefault(end, [])
            tables.append(rows)
            if len(tables) > _MAX_TABLES:
                store[end] = [pa.concat_tables(tables).combine_chunks()]

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        self.watermark = watermark
        ready = sorted(end for end in self.buffers[0].keys() | self.buffers[1].keys() if end - 1 <= watermark)
        if ready:
            left, right = (self._take(side, ready) for side in (0, 1))
            self._emit(left, right, out)
        return watermark

    def _take(self, side: int, ends: list[int]) -> pa.Table:
        """Removes and returns the rows of the windows ending at ``ends``."""
        tables = [t for end in ends for t in self.buffers[side].pop(end, [])]
        return pa.concat_tables(tables) if tables else self.schemas[side].empty_table()

    def _emit(self, left: pa.Table, right: pa.Table, out: Collector) -> None:
        if left.num_rows and right.num_rows:
            left_rows, right_rows = equi_pairs(left, right, *self.join_keys)
        else:
            left_rows = right_rows = pa.array([], pa.int64())
        matched = joined_batch(left, right, left_rows, right_rows, self.right_columns, self.schema)
        if self.condition is not None and matched.num_rows:
            holds = residual_mask(self.condition, matched)
            matched, left_rows, right_rows = matched.filter(holds), left_rows.filter(holds), right_rows.filter(holds)
        out.emit(matched)
        if self.how in ("left", "full") and left.num_rows:
            out.emit(self._pad_left(left.filter(_unmatched(left.num_rows, left_rows))))
        if self.how in ("right", "full") and right.num_rows:
            out.emit(self._pad_right(right.filter(_unmatched(right.num_rows, right_rows))))

    def _pad_left(self, left: pa.Table) -> pa.RecordBatch:
        """Left rows that matched nothing, with null right columns."""
        n = left.num_rows
        arrays = [c.combine_chunks() for c in left.columns]
        arrays += [pa.nulls(n, self.schema.field(name).type) for _, name in self.right_columns]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _pad_right(self, right: pa.Table) -> pa.RecordBatch:
        """Right rows that matched nothing: null left columns but for keys, window (and time)."""
        n = right.num_rows
        arrays = []
        for f in self.schemas[0]:
            source = self.left_from_right.get(f.name)
            arrays.append(right.column(source).combine_chunks() if source is not None else pa.nulls(n, f.type))
        arrays += [right.column(name).combine_chunks() for name, _ in self.right_columns]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def snapshot(self) -> Any:
        """``{"left": table, "right": table, "watermark": int}``: every row of every open window."""
        state: dict[str, Any] = {"watermark": self.watermark}
        for side, label in ((0, "left"), (1, "right")):
            tables = [t for end in sorted(self.buffers[side]) for t in self.buffers[side][end]]
            state[label] = pa.concat_tables(tables) if tables else self.schemas[side].empty_table()
        return state

    def restore(self, state: Any) -> None:
        self.buffers = ({}, {})
        self._restore_side(0, state["left"])
        self._restore_side(1, state["right"])
        self.watermark = state["watermark"]

    def _restore_side(self, side: int, table: pa.Table) -> None:
        if table.num_rows:
            self._buffer(side, table, window_millis(table.column(self.ends[side])).to_numpy())


def _unmatched(n: int, matched_rows: pa.Array) -> pa.Array:
    """Mask of the rows 0..n-1 that are not among ``matched_rows``."""
    return pc.invert(pc.is_in(pa.array(np.arange(n, dtype=np.int64)), value_set=matched_rows))
