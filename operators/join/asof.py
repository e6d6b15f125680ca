"""As-of join: each left row enriched with the latest right row of its key at or before it.

The classic use is the district fusion: a detection takes the latest weather reading of its
district. A left row waits until the watermark passes its time (then no right row at or
before it can still come); the right side keeps, per key, only what a waiting left row may
still need, so its state is bounded by the watermark.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.operator import LATE, Collector, Operator
from engine.state import tables_of_state, tables_state
from engine.timeutil import MIN_WATERMARK, clamp, time_values
from operators.keys import key_change


def asof_match(
    left: pa.Table,
    right: pa.Table,
    left_keys: list[str],
    right_keys: list[str],
    left_time: str,
    right_time: str,
    tolerance_ms: int | None,
) -> tuple[pa.Array, pa.Array]:
    """Indices (left row, matching right row or null), vectorised: sort both sides together
    by key and time (right before left at equal time) and carry the last right row forward."""
    n_left, n_right = left.num_rows, right.num_rows
    keys = [f"__k{i}" for i in range(len(left_keys))]
    combined = pa.concat_tables(
        [
            pa.table(
                [left.column(k) for k in left_keys]
                + [
                    time_values(left.column(left_time)),
                    pa.repeat(1, n_left).cast(pa.int8()),
                    pa.array(np.arange(n_left, dtype=np.int64)),
                ],
                names=keys + ["__t", "__side", "__i"],
            ),
            pa.table(
                [right.column(k) for k in right_keys]
                + [
                    time_values(right.column(right_time)),
                    pa.repeat(0, n_right).cast(pa.int8()),
                    pa.array(np.arange(n_right, dtype=np.int64)),
                ],
                names=keys + ["__t", "__side", "__i"],
            ),
        ]
    ).combine_chunks()
    combined = combined.sort_by([(k, "ascending") for k in keys] + [("__t", "ascending"), ("__side", "ascending")])
    group = pc.cumulative_sum(key_change(combined, keys).cast(pa.int64()))
    is_right = pc.equal(combined.column("__side"), 0)
    right_index = pc.fill_null_forward(pc.if_else(is_right, combined.column("__i"), None))
    right_group = pc.fill_null_forward(pc.if_else(is_right, group, None))
    right_time_carried = pc.fill_null_forward(pc.if_else(is_right, combined.column("__t"), None))
    match = pc.equal(right_group, group)
    if tolerance_ms is not None:
        match = pc.and_(match, pc.less_equal(pc.subtract(combined.column("__t"), right_time_carried), tolerance_ms))
    is_left = pc.invert(is_right)
    left_rows = combined.column("__i").filter(is_left)
    matched = pc.if_else(pc.fill_null(match, False), right_index, None).filter(is_left)
    return left_rows.combine_chunks(), matched.combine_chunks() if isinstance(matched, pa.ChunkedArray) else matched


class AsofJoin(Operator):
    """Left outer as-of join on keys and event time, with an optional tolerance.

    Input 0 is the left stream, input 1 the right. Left rows behind the watermark when
    they arrive go to the ``late`` output; right rows are never refused.
    """

    def __init__(
        self,
        left_keys: list[str],
        right_keys: list[str],
        left_time: str,
        right_time: str,
        tolerance_ms: int | None,
        right_columns: list[tuple[str, str]],
        right_schema: pa.Schema,
        schema: pa.Schema,
    ) -> None:
        self.left_keys, self.right_keys = left_keys, right_keys
        self.right_schema = right_schema
        self.left_time, self.right_time = left_time, right_time
        self.tolerance = tolerance_ms
        self.right_columns = right_columns
        self.schema = schema
        self.pending: list[pa.Table] = []
        self.right: list[pa.Table] = []
        self.watermark = MIN_WATERMARK

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if input_index == 1:
            self.right.append(pa.Table.from_batches([batch]))
            return
        if self.watermark != MIN_WATERMARK:
            late = pc.less_equal(time_values(batch.column(self.left_time)), self.watermark)
            if pc.any(late).as_py():
                out.emit_to(LATE, batch.filter(late))
                batch = batch.filter(pc.invert(late))
        if batch.num_rows:
            self.pending.append(pa.Table.from_batches([batch]))

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        self.watermark = watermark
        if self.pending:
            left = pa.concat_tables(self.pending)
            ready = pc.less_equal(time_values(left.column(self.left_time)), watermark)
            ready_rows = left.filter(ready)
            self.pending = [left.filter(pc.invert(ready))] if ready_rows.num_rows < left.num_rows else []
            if ready_rows.num_rows:
                self._emit_joined(ready_rows, out)
        self._trim_right(watermark)
        return watermark

    def _emit_joined(self, left: pa.Table, out: Collector) -> None:
        right = pa.concat_tables(self.right) if self.right else self.right_schema.empty_table()
        left_rows, right_rows = asof_match(
            left, right, self.left_keys, self.right_keys, self.left_time, self.right_time, self.tolerance
        )
        joined = left.take(left_rows)
        taken = right.select([name for name, _ in self.right_columns]).take(right_rows)
        arrays = joined.columns + taken.columns
        for batch in pa.Table.from_arrays(arrays, schema=self.schema).to_batches():
            out.emit(batch)

    def _trim_right(self, watermark: int) -> None:
        """Drops right rows no waiting or future left row (time > watermark) can match."""
        if not self.right:
            return
        right = pa.concat_tables(self.right)
        times = time_values(right.column(self.right_time))
        if self.tolerance is not None:
            bound = clamp(watermark + 1 - self.tolerance)
            oldest = pc.min(times)
            if oldest.is_valid and oldest.as_py() >= bound:
                self.right = [right]  # nothing to drop yet (and one table from now on)
                return
            keep = pc.greater_equal(times, bound)
        else:
            # The latest row per key at or before the watermark, and everything after it.
            order = right.append_column("__i", pa.array(np.arange(right.num_rows, dtype=np.int64)))
            order = order.sort_by(
                [(k, "ascending") for k in self.right_keys] + [(self.right_time, "ascending"), ("__i", "ascending")]
            )
            n = order.num_rows
            last_of_key = pa.concat_arrays([key_change(order, self.right_keys).slice(1), pa.array([True])])
            sorted_times = time_values(order.column(self.right_time)).combine_chunks()
            next_times = pa.concat_arrays([sorted_times.slice(1), pa.array([None], pa.int64())])
            # A row is needed if it is after the watermark, or if the next row of its key is.
            next_after = pc.fill_null(pc.greater(next_times, watermark), True)
            needed = pc.or_(pc.greater(sorted_times, watermark), pc.or_(last_of_key, next_after))
            keep_sorted = pc.sort_indices(order.column("__i").filter(needed))
            keep_indices = order.column("__i").filter(needed).take(keep_sorted)
            self.right = [right.take(keep_indices)] if n else []
            return
        self.right = [right.filter(keep)]

    def snapshot(self) -> dict[str, Any]:
        """``{"watermark": int, "pending": table or None, "right": table or None}``: the left rows
        waiting for the watermark, and the right rows they (or later ones) may still match."""
        return {"watermark": self.watermark, "pending": tables_state(self.pending), "right": tables_state(self.right)}

    def restore(self, state: dict[str, Any]) -> None:
        self.watermark = state["watermark"]
        self.pending = tables_of_state(state["pending"])
        self.right = tables_of_state(state["right"])
