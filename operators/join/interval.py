"""Interval join: left and right rows of the same key whose times are within a bound.

A pair (l, r) joins when ``lower <= l.time - r.time <= upper``. Each side buffers its rows
until the watermark says no row of the other side can still match them; every pair is
emitted once, when its second row arrives.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.operator import LATE, Collector, Operator
from engine.state import tables_of_state, tables_state
from engine.timeutil import MIN_WATERMARK, clamp, time_values

LATE_RIGHT = "late_right"


class IntervalJoin(Operator):
    """Inner interval join on keys; input 0 is left, input 1 right. The output's event time
    is the left row's; rows behind the watermark go to ``late`` (left) or ``late_right``."""

    def __init__(
        self,
        left_keys: list[str],
        right_keys: list[str],
        left_time: str,
        right_time: str,
        lower_ms: int,
        upper_ms: int,
        right_columns: list[tuple[str, str]],
        schema: pa.Schema,
    ) -> None:
        self.left_keys, self.right_keys = left_keys, right_keys
        self.left_time, self.right_time = left_time, right_time
        self.lower, self.upper = lower_ms, upper_ms
        self.right_columns = right_columns
        self.schema = schema
        self.buffers: list[list[pa.Table]] = [[], []]
        self.watermark = MIN_WATERMARK

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        time_column = self.left_time if input_index == 0 else self.right_time
        if self.watermark != MIN_WATERMARK:
            late = pc.less_equal(time_values(batch.column(time_column)), self.watermark)
            if pc.any(late).as_py():
                out.emit_to(LATE if input_index == 0 else LATE_RIGHT, batch.filter(late))
                batch = batch.filter(pc.invert(late))
        if batch.num_rows == 0:
            return
        table = pa.Table.from_batches([batch])
        other = self.buffers[1 - input_index]
        if other:
            other_table = pa.concat_tables(other)
            left, right = (table, other_table) if input_index == 0 else (other_table, table)
            self._emit_pairs(left, right, out)
        self.buffers[input_index].append(table)

    def _emit_pairs(self, left: pa.Table, right: pa.Table, out: Collector) -> None:
        renamed = {name: out_name for name, out_name in self.right_columns}
        right_part = right.select(self.right_keys + list(renamed)).rename_columns(
            [f"__rk{i}" for i in range(len(self.right_keys))] + list(renamed.values())
        )
        joined = left.join(
            right_part,
            self.left_keys,
            [f"__rk{i}" for i in range(len(self.right_keys))],
            join_type="inner",
            use_threads=False,
            coalesce_keys=True,
        )
        if joined.num_rows == 0:
            return
        right_time_out = renamed[self.right_time]
        difference = pc.subtract(time_values(joined.column(self.left_time)), time_values(joined.column(right_time_out)))
        joined = joined.filter(pc.and_(pc.greater_equal(difference, self.lower), pc.less_equal(difference, self.upper)))
        for batch in joined.select(self.schema.names).cast(self.schema).to_batches():
            out.emit(batch)

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        self.watermark = watermark
        # Left rows with time <= watermark + lower, right rows with time <= watermark - upper,
        # can match no row still to come.
        for side, limit in ((0, clamp(watermark + self.lower)), (1, clamp(watermark - self.upper))):
            if self.buffers[side]:
                table = pa.concat_tables(self.buffers[side])
                time_column = self.left_time if side == 0 else self.right_time
                kept = table.filter(pc.greater(time_values(table.column(time_column)), limit))
                self.buffers[side] = [kept] if kept.num_rows else []
        # A buffered left row may still pair with a right row to come, down to watermark + lower.
        return clamp(watermark + min(0, self.lower))

    def snapshot(self) -> dict[str, Any]:
        """``{"watermark": int, "left": table or None, "right": table or None}``: each side's rows
        that a row still to come on the other side may pair with."""
        return {"watermark": self.watermark, "left": tables_state(self.buffers[0]), "right": tables_state(self.buffers[1])}

    def restore(self, state: dict[str, Any]) -> None:
        self.watermark = state["watermark"]
        self.buffers = [tables_of_state(state["left"]), tables_of_state(state["right"])]
