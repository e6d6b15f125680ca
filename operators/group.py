"""Unbounded (non-windowed) GROUP BY: an updating aggregate whose output is a changelog.

Per key, the aggregates of every row so far. On each watermark the keys that changed since
the last one are emitted with their new values: ``+I`` the first time, ``+U`` after, ``-D``
when a key that was emitted no longer passes HAVING (as Flink's upsert streams). State is
one partial row per key (two-phase aggregation), so it grows with the number of keys; it is
kept in segments indexed by key hash, so a watermark costs about its changed keys, not the
whole state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from engine.expr import Expr, as_array
from engine.operator import Collector, Operator
from engine.partitioning import hash_keys
from operators.keys import hash_matches
from operators.window.aggregates import Partials, TwoPhaseAggregate, partials_of_state, partials_state

OP_COLUMN = "__op"
INSERT, UPDATE, DELETE = "+I", "+U", "-D"
_OPS = pa.array([INSERT, UPDATE, DELETE], pa.string())


def updating_schema(key_fields: list[pa.Field], agg_fields: list[pa.Field]) -> pa.Schema:
    """keys, aggregates, and the change kind (+I, +U, -D)."""
    return pa.schema([*key_fields, *agg_fields, pa.field(OP_COLUMN, pa.string())])


@dataclass
class _Segment:
    """Rows of the state (the main partial table, then each distinct table), indexed by key
    hash; rows replaced by a newer segment are marked dead, not removed."""

    tables: list[pa.Table]
    hashes: list[np.ndarray]  # per table, per row
    sorted_hashes: list[np.ndarray]
    order: list[np.ndarray]  # row of each sorted hash
    alive: list[np.ndarray]
    emitted: np.ndarray  # per main row: its key's last change was emitted (passed HAVING)

    @staticmethod
    def of(tables: list[pa.Table], hashes: list[np.ndarray], emitted: np.ndarray) -> _Segment:
        orders = [np.argsort(h, kind="stable") for h in hashes]
        sorted_hashes = [h[o] for h, o in zip(hashes, orders, strict=True)]
        return _Segment(tables, hashes, sorted_hashes, orders, [np.ones(len(h), bool) for h in hashes], emitted)

    @property
    def live(self) -> int:
        return int(self.alive[0].sum())

    def take_keys(self, touched: np.ndarray) -> list[np.ndarray]:
        """Per table, the live rows whose key hash is in ``touched`` (sorted, unique); they are
        marked dead (the caller merges them into a newer segment)."""
        found = []
        for sorted_hashes, order, alive in zip(self.sorted_hashes, self.order, self.alive, strict=True):
            _, rows = hash_matches(sorted_hashes, order, touched)
            rows = rows[alive[rows]]
            alive[rows] = False
            found.append(rows)
        return found

    def compacted(self) -> tuple[list[pa.Table], list[np.ndarray], np.ndarray]:
        """The live rows, their hashes, and the main rows' emitted flags."""
        return (
            [t.filter(pa.array(a)) for t, a in zip(self.tables, self.alive, strict=True)],
            [h[a] for h, a in zip(self.hashes, self.alive, strict=True)],
            self.emitted[self.alive[0]],
        )


class UpdatingAggregate(Operator):
    """Keyed (or global) running aggregate with an optional HAVING predicate over its result."""

    def __init__(self, keys: list[str], aggregate: TwoPhaseAggregate, having: Expr | None, schema: pa.Schema) -> None:
        self.keys = keys
        self.aggregate = aggregate
        self.having = having
        self.schema = schema
        read = [a.column for a in aggregate.aggs if a.column] + ([aggregate.time_column] if aggregate.ordered else [])
        self.needed = list(dict.fromkeys(keys + read))
        # The state in segments (a log-structured merge: the newest holds the keys the last
        # watermark changed; segments of similar live size merge, dropping dead rows), so there
        # are O(log keys) of them and a key is found by binary search on its hash.
        self.segments: list[_Segment] = []
        self.pending: list[Partials] = []

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if batch.num_rows:
            table = pa.Table.from_batches([batch]).select(self.needed)
            self.pending.append(self.aggregate.partial(table, self.keys))

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        if self.pending:
            self._emit_changes(out)
        return watermark

    def _emit_changes(self, out: Collector) -> None:
        changed = self.aggregate.merge(self.pending, self.keys)
        self.pending = []
        touched = np.unique(self._key_hashes(changed.main))
        previous: list[list[pa.Table]] = [[] for _ in range(1 + len(changed.distinct))]
        was_emitted = []  # key hashes of the changed keys whose last change was emitted
        for segment in self.segments:
            for i, rows in enumerate(segment.take_keys(touched)):
                if len(rows):
                    previous[i].append(segment.tables[i].take(pa.array(rows)))
                    if i == 0:
                        was_emitted.append(segment.hashes[0][rows[segment.emitted[rows]]])
        if previous[0]:
            # The keys' earlier partials merge with the change: their new values.
            earlier = [
                pa.concat_tables(p) if p else t.schema.empty_table()
                for p, t in zip(previous, [changed.main, *changed.distinct], strict=True)
            ]
            changed = self.aggregate.merge([Partials(earlier[0], earlier[1:]), changed], self.keys)
        changed_hashes = self._hashes_of(changed)
        result = self.aggregate.finalize([changed], self.keys)
        hashes = self._key_hashes(result)
        before = np.isin(hashes, np.concatenate(was_emitted)) if was_emitted else np.zeros(len(hashes), bool)
        if self.having is not None:
            batch = result.combine_chunks().to_batches()[0] if result.num_rows else None
            passed = (
                np.zeros(0, dtype=bool)
                if batch is None
                else as_array(self.having.evaluate(batch), batch.num_rows).fill_null(False).to_numpy(zero_copy_only=False)
            )
        else:
            passed = np.ones(result.num_rows, dtype=bool)
        codes = np.full(result.num_rows, -1, dtype=np.int8)  # index into _OPS; -1: nothing to say
        codes[passed & ~before] = 0
        codes[passed & before] = 1
        codes[~passed & before] = 2
        emitted = np.isin(changed_hashes[0], hashes[passed])
        self.segments.append(_Segment.of([changed.main, *changed.distinct], changed_hashes, emitted))
        self._compact()
        said = codes >= 0
        ops = pa.DictionaryArray.from_arrays(pa.array(codes[said]), _OPS).cast(pa.string())
        table = result.filter(pa.array(said)).append_column(OP_COLUMN, ops)
        for batch in table.cast(self.schema).to_batches():
            out.emit(batch)

    def _compact(self) -> None:
        while len(self.segments) > 1 and self.segments[-1].live * 2 >= self.segments[-2].live:
            newer, older = self.segments.pop(), self.segments.pop()
            (old_tables, old_hashes, old_emitted), (new_tables, new_hashes, new_emitted) = older.compacted(), newer.compacted()
            tables = [pa.concat_tables([a, b]).combine_chunks() for a, b in zip(old_tables, new_tables, strict=True)]
            hashes = [np.concatenate([a, b]) for a, b in zip(old_hashes, new_hashes, strict=True)]
            self.segments.append(_Segment.of(tables, hashes, np.concatenate([old_emitted, new_emitted])))

    def _hashes_of(self, partials: Partials) -> list[np.ndarray]:
        return [self._key_hashes(partials.main), *(self._key_hashes(t) for t in partials.distinct)]

    def _key_hashes(self, table: pa.Table) -> np.ndarray:
        if not self.keys:
            return np.zeros(table.num_rows, dtype=np.uint64)
        return hash_keys(table.combine_chunks(), self.keys).astype(np.uint64)

    def snapshot(self) -> dict[str, Any]:
        """``{"segments": partials_state or None, "emitted": bool array, "pending": partials_state
        or None}``: the live rows of each segment (one part per segment, so that a restore
        gives back the same segments and compacts as the original would), whether each main
        row's last change was emitted (so that the next one is +U or -D), and the partials of
        the batches since the last watermark, not merged yet."""
        compacted = [segment.compacted() for segment in self.segments]
        return {
            "segments": partials_state([Partials(tables[0], tables[1:]) for tables, _, _ in compacted]),
            "emitted": np.concatenate([emitted for _, _, emitted in compacted]) if compacted else np.zeros(0, dtype=bool),
            "pending": partials_state(self.pending),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.segments = []
        emitted = np.asarray(state["emitted"], dtype=bool)
        start = 0
        for part in partials_of_state(state["segments"]):
            rows = emitted[start : start + part.num_rows]
            start += part.num_rows
            self.segments.append(_Segment.of([part.main, *part.distinct], self._hashes_of(part), rows))
        self.pending = partials_of_state(state["pending"])
