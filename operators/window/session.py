"""Session windows: per key, rows closer than ``gap`` to each other form one session.

A session [first, last + gap) fires when the watermark passes its end. State is one row of
partial aggregates per open session (not its raw rows): on each watermark that may close a
session, the rows that came since are cut into mini-sessions (sort by key and time, cut where
the key changes or time jumps by >= gap), and those merge with the open sessions they touch,
vectorised: sort the sessions by key and start, and a session joins the previous one when it
starts less than ``gap`` after the latest end so far in its key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.operator import LATE, Collector, Operator
from engine.state import tables_of_state, tables_state
from engine.timeutil import MAX_WATERMARK, MIN_WATERMARK, clamp, time_values
from operators.keys import key_change
from operators.window.aggregates import Partials, TwoPhaseAggregate, partials_of_state, partials_state
from operators.window.common import window_result

_SID = "__sid"
# Kept beside each session's partials: first and last time, whether it was emitted, and
# whether rows came since it was (last) emitted.
_EXTRA_PARTIAL = [
    ("__t", "min", "__start"),
    ("__t", "max", "__last"),
    ("__emitted", "any", "__emitted"),
    ("__changed", "any", "__changed"),
]
_EXTRA_MERGE = [("__start", "min"), ("__last", "max"), ("__emitted", "any"), ("__changed", "any")]


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
        self.buffer: list[pa.Table] = []  # rows not yet merged into sessions
        self.sessions: Partials | None = None  # one row per open (or retained) session
        self.next_sid = 0
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
        self.buffer.append(pa.Table.from_batches([batch.select(self.needed)]))
        self.next_fire = min(self.next_fire, pc.min(times).as_py() + self.gap)

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        self.watermark = watermark
        if watermark < self.next_fire - 1:
            return watermark
        if self.buffer:
            self._merge_buffer()
        if self.sessions is None:
            self.next_fire = MAX_WATERMARK
            return watermark
        sessions = self.sessions
        main = sessions.main
        ends = pc.add(time_values(main.column("__last")), self.gap)
        complete = pc.less_equal(pc.subtract(ends, 1), watermark)
        to_emit = pc.and_(complete, main.column("__changed"))
        for is_update in (False, True):
            selected = pc.and_(to_emit, pc.equal(main.column("__emitted"), is_update))
            if pc.any(selected).as_py():
                self._emit(sessions, selected, is_update, out)
        # Keep open sessions, and complete ones within the allowed lateness (marked emitted,
        # so that a late row makes an update); drop the rest.
        keep = pc.greater(pc.add(ends, self.lateness - 1), watermark)
        emitted = pc.or_(main.column("__emitted"), complete)
        changed = pc.and_(main.column("__changed"), pc.invert(complete))
        main = main.set_column(main.schema.get_field_index("__emitted"), "__emitted", emitted)
        main = main.set_column(main.schema.get_field_index("__changed"), "__changed", changed)
        kept_ids = main.column(_SID).filter(keep).combine_chunks()
        self.sessions = Partials(
            main.filter(keep), [d.filter(pc.is_in(d.column(_SID), value_set=kept_ids)) for d in sessions.distinct]
        )
        # Wake up for the next session to close, or the next retained one to be dropped.
        wake = pc.if_else(complete, pc.add(ends, self.lateness), ends).filter(keep)
        self.next_fire = pc.min(wake).as_py() if len(wake) else MAX_WATERMARK
        return watermark

    def _merge_buffer(self) -> None:
        """Cuts the buffered rows into mini-sessions and merges them with the open sessions."""
        rows = pa.concat_tables(self.buffer)
        self.buffer = []
        rows = rows.sort_by([(k, "ascending") for k in self.keys] + [(self.time_column, "ascending")])
        times = time_values(rows.column(self.time_column)).combine_chunks()
        n = rows.num_rows
        gap_break = pc.greater_equal(pc.subtract(times.slice(1), times.slice(0, n - 1)), self.gap)
        starts = pc.or_(key_change(rows, self.keys), pa.concat_arrays([pa.array([True]), gap_break]))
        local = np.cumsum(starts.to_numpy(zero_copy_only=False).astype(np.int64)) - 1 + self.next_sid
        self.next_sid = int(local[-1]) + 1
        rows = rows.append_column(_SID, pa.array(local)).append_column("__t", times)
        rows = rows.append_column("__emitted", pa.repeat(False, n)).append_column("__changed", pa.repeat(True, n))
        # Sorted by key and time, each mini-session's rows are in time order already.
        fresh = self.aggregate.partial(rows, self.keys + [_SID], _EXTRA_PARTIAL, time_ordered_groups=True)
        if self.sessions is None:
            self.sessions = fresh
            return
        every = Partials(
            pa.concat_tables([self.sessions.main, fresh.main]),
            [pa.concat_tables(pair) for pair in zip(self.sessions.distinct, fresh.distinct, strict=True)],
        )
        self.sessions = self._merge_overlapping(every)

    def _merge_overlapping(self, sessions: Partials) -> Partials:
        """Merges sessions of a key that are less than ``gap`` apart, under new session ids."""
        main = sessions.main.sort_by([(k, "ascending") for k in self.keys] + [("__start", "ascending")])
        n = main.num_rows
        new_key = key_change(main, self.keys).to_numpy(zero_copy_only=False)
        start = time_values(main.column("__start")).to_numpy()
        last = time_values(main.column("__last")).to_numpy()
        group = np.cumsum(new_key)
        # Latest end so far within each key: a running maximum over (group, last), made
        # monotone across groups by lifting each group above the previous ones.
        base, span = int(start.min()), int(last.max() - start.min()) + self.gap + 1
        lifted = (last - base) + group * span
        latest = np.maximum.accumulate(lifted)
        joins = np.zeros(n, dtype=bool)
        joins[1:] = ~new_key[1:] & ((start[1:] - base) + group[1:] * span < latest[:-1] + self.gap)
        new_ids = np.cumsum(~joins) - 1 + self.next_sid
        self.next_sid = int(new_ids[-1]) + 1
        old_ids = main.column(_SID).combine_chunks()
        main = main.set_column(main.schema.get_field_index(_SID), _SID, pa.array(new_ids))
        distinct = [
            d.set_column(
                d.schema.get_field_index(_SID), _SID, pa.array(new_ids).take(pc.index_in(d.column(_SID), value_set=old_ids))
            )
            for d in sessions.distinct
        ]
        return self.aggregate.merge([Partials(main, distinct)], self.keys + [_SID], _EXTRA_MERGE)

    def _emit(self, sessions: Partials, selected: pa.Array, is_update: bool, out: Collector) -> None:
        ids = sessions.main.column(_SID).filter(selected).combine_chunks()
        # The main table has one row per session: its rows are the selected ones.
        chosen = Partials(
            sessions.main.filter(selected), [d.filter(pc.is_in(d.column(_SID), value_set=ids)) for d in sessions.distinct]
        )
        group = self.keys + [_SID]
        # One row per session (merged when they came): nothing to merge again.
        result = self.aggregate.finalize([chosen], group, unique=True).sort_by(_SID)
        meta = chosen.main.sort_by(_SID)
        starts = time_values(meta.column("__start")).combine_chunks()
        ends = pc.add(time_values(meta.column("__last")), self.gap).combine_chunks()
        emitted = window_result(result.drop_columns([_SID]), starts, ends, len(self.keys), is_update, self.schema)
        for batch in emitted.to_batches():
            out.emit(batch)

    def snapshot(self) -> dict[str, Any]:
        """The rows not yet cut into sessions (``buffer``, a table or None), the sessions' partials
        (``sessions``: partials_state of one part, or None), and the scalars: ``watermark``,
        ``next_fire`` and ``next_sid`` (session ids go on from there, so none is reused)."""
        return {
            "watermark": self.watermark,
            "next_fire": self.next_fire,
            "next_sid": self.next_sid,
            "buffer": tables_state(self.buffer),
            "sessions": partials_state([self.sessions] if self.sessions is not None else []),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.watermark = state["watermark"]
        self.next_fire = state["next_fire"]
        self.next_sid = state["next_sid"]
        self.buffer = tables_of_state(state["buffer"])
        sessions = partials_of_state(state["sessions"])
        self.sessions = sessions[0] if sessions else None
