"""Session windows: per key, rows closer than ``gap`` to each other form one session.

A session [first, last + gap) fires when the watermark passes its end. Rows of open
sessions are buffered (a session's extent is only known at its end) and sessions are found
vectorised: sort by key and time, cut where the key changes or the time jumps by >= gap.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from engine.operator import LATE, Collector, Operator
from engine.timeutil import MAX_WATERMARK, MIN_WATERMARK, clamp, time_values
from operators.keys import key_change
from operators.window.aggregates import TwoPhaseAggregate
from operators.window.common import window_result


class SessionWindow(Operator):
    """Keyed (or global) session window."""

    def __init__(
        self,
        keys: list[str],
        aggregate: TwoPhaseAggregate,
        gap_ms: int,
        allowed_lateness_ms: int,
        time_column: str,
        schema: pa.Schema,
    ) -> None:
        self.keys = keys
        self.aggregate = aggregate
        self.gap = gap_ms
        self.lateness = allowed_lateness_ms
        self.time_column = time_column
        self.schema = schema
        self.needed = list(dict.fromkeys(keys + [time_column] + [a.column for a in aggregate.aggs if a.column]))
        self.buffer: list[pa.Table] = []
        self.watermark = MIN_WATERMARK
        self.next_fire = MAX_WATERMARK  # earliest end of a session not yet emitted

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        times = time_values(batch.column(self.time_column))
        if self.watermark != MIN_WATERMARK:
            late = pc.less_equal(times, clamp(self.watermark - self.gap + 1 - self.lateness))
            if pc.any(late).as_py():
                out.emit_to(LATE, batch.filter(late))
                keep = pc.invert(late)
                batch, times = batch.filter(keep), times.filter(keep)
        if batch.num_rows == 0:
            return
        table = pa.Table.from_batches([batch.select(self.needed)])
        self.buffer.append(table.append_column("__new", pa.repeat(True, table.num_rows)))
        self.next_fire = min(self.next_fire, pc.min(times).as_py() + self.gap)

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        self.watermark = watermark
        if watermark < self.next_fire - 1 or not self.buffer:
            return watermark
        rows = pa.concat_tables(self.buffer).sort_by([(k, "ascending") for k in self.keys] + [(self.time_column, "ascending")])
        session = self._session_ids(rows)
        rows = rows.append_column("__sid", session)
        group = self.keys + ["__sid"]
        stats = (
            rows.group_by(group)
            .aggregate([(self.time_column, "min"), (self.time_column, "max"), ("__new", "any"), ("__new", "all")])
            .rename_columns(group + ["__start", "__last", "__any_new", "__all_new"])
        )
        stats = stats.sort_by("__sid")
        ends = pc.add(time_values(stats.column("__last")), self.gap)
        complete = pc.less_equal(pc.subtract(ends, 1), watermark)
        to_emit = pc.and_(complete, stats.column("__any_new"))
        for is_update in (False, True):
            selected = pc.and_(to_emit, pc.equal(pc.invert(stats.column("__all_new")), is_update))
            if not pc.any(selected).as_py():
                continue
            sids = stats.column("__sid").filter(selected)
            chosen = rows.filter(pc.is_in(rows.column("__sid"), value_set=sids.combine_chunks()))
            result = self.aggregate.finalize([self.aggregate.partial(chosen, group)], group).sort_by("__sid")
            result = result.drop_columns(["__sid"])
            starts = time_values(stats.column("__start").filter(selected)).combine_chunks()
            ends_selected = ends.filter(selected).combine_chunks()
            emitted = window_result(result, starts, ends_selected, len(self.keys), is_update, self.schema)
            for batch in emitted.to_batches():
                out.emit(batch)
        # Keep the rows of sessions that may still change: open ones, and complete ones within
        # the allowed lateness (marked as emitted, so that a late row makes an update).
        keep_session = pc.greater(pc.add(ends, self.lateness - 1), watermark)
        kept_sids = stats.column("__sid").filter(keep_session).combine_chunks()
        open_ends = ends.filter(pc.invert(complete))
        self.next_fire = pc.min(open_ends).as_py() if len(open_ends) else MAX_WATERMARK
        kept = rows.filter(pc.is_in(rows.column("__sid"), value_set=kept_sids))
        emitted_sids = stats.column("__sid").filter(complete).combine_chunks()
        new_flag = pc.and_(kept.column("__new"), pc.invert(pc.is_in(kept.column("__sid"), value_set=emitted_sids)))
        kept = kept.drop_columns(["__sid", "__new"]).append_column("__new", new_flag)
        self.buffer = [kept] if kept.num_rows else []
        return watermark

    def _session_ids(self, rows: pa.Table) -> pa.Array:
        """Numbers the sessions of rows sorted by key and time."""
        n = rows.num_rows
        times = time_values(rows.column(self.time_column)).combine_chunks()
        if n == 0:
            return pa.array([], pa.int64())
        gap_break = pc.greater_equal(pc.subtract(times.slice(1), times.slice(0, n - 1)), self.gap)
        starts = pc.or_(key_change(rows, self.keys), pa.concat_arrays([pa.array([True]), gap_break]))
        return pc.cumulative_sum(starts.cast(pa.int64()))
