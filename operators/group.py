"""Unbounded (non-windowed) GROUP BY: an updating aggregate whose output is a changelog.

Per key, the aggregates of every row so far. On each watermark the keys that changed since
the last one are emitted with their new values: ``+I`` the first time, ``+U`` after, ``-D``
when a key that was emitted no longer passes HAVING (as Flink's upsert streams). State is
one partial row per key (two-phase aggregation), so it grows with the number of keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from engine.expr import Expr, as_array
from engine.operator import Collector, Operator
from engine.partitioning import hash_keys
from operators.window.aggregates import Partials, TwoPhaseAggregate

OP_COLUMN = "__op"
INSERT, UPDATE, DELETE = "+I", "+U", "-D"
_OPS = pa.array([INSERT, UPDATE, DELETE], pa.string())


def updating_schema(key_fields: list[pa.Field], agg_fields: list[pa.Field]) -> pa.Schema:
    """keys, aggregates, and the change kind (+I, +U, -D)."""
    return pa.schema([*key_fields, *agg_fields, pa.field(OP_COLUMN, pa.string())])


class UpdatingAggregate(Operator):
    """Keyed (or global) running aggregate with an optional HAVING predicate over its result."""

    def __init__(self, keys: list[str], aggregate: TwoPhaseAggregate, having: Expr | None, schema: pa.Schema) -> None:
        self.keys = keys
        self.aggregate = aggregate
        self.having = having
        self.schema = schema
        read = [a.column for a in aggregate.aggs if a.column] + ([aggregate.time_column] if aggregate.ordered else [])
        self.needed = list(dict.fromkeys(keys + read))
        self.state: Partials | None = None
        # The key hash of every state row (main table, then each distinct table), computed once
        # when the row enters the state: finding the rows a watermark changes is then a numpy
        # lookup, not a hash of every key in the state.
        self.hashes: list[np.ndarray] = []
        self.pending: list[Partials] = []
        self.emitted = np.empty(0, dtype=np.uint64)  # key hashes of the keys whose last change was emitted

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
        if self.state is None:
            self.state, self.hashes = changed, self._hashes_of(changed)
        else:
            touched = self._key_hashes(changed.main)
            masks = [np.isin(h, touched) for h in self.hashes]
            tables = [self.state.main, *self.state.distinct]
            old_rows = [t.filter(pa.array(m)) for t, m in zip(tables, masks, strict=True)]
            kept = [t.filter(pa.array(~m)) for t, m in zip(tables, masks, strict=True)]
            updated = self.aggregate.merge([Partials(old_rows[0], old_rows[1:]), changed], self.keys)
            updated_hashes = self._hashes_of(updated)
            merged = [pa.concat_tables([k, u]) for k, u in zip(kept, [updated.main, *updated.distinct], strict=True)]
            self.state = Partials(merged[0], merged[1:])
            self.hashes = [np.concatenate([h[~m], u]) for h, m, u in zip(self.hashes, masks, updated_hashes, strict=True)]
            changed = updated
        result = self.aggregate.finalize([changed], self.keys)
        hashes = self._key_hashes(result)
        before = np.isin(hashes, self.emitted)
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
        self.emitted = np.union1d(np.setdiff1d(self.emitted, hashes[~passed & before]), hashes[passed])
        said = codes >= 0
        ops = pa.DictionaryArray.from_arrays(pa.array(codes[said]), _OPS).cast(pa.string())
        table = result.filter(pa.array(said)).append_column(OP_COLUMN, ops)
        for batch in table.cast(self.schema).to_batches():
            out.emit(batch)

    def _hashes_of(self, partials: Partials) -> list[np.ndarray]:
        return [self._key_hashes(partials.main), *(self._key_hashes(t) for t in partials.distinct)]

    def _key_hashes(self, table: pa.Table) -> np.ndarray:
        if not self.keys:
            return np.zeros(table.num_rows, dtype=np.uint64)
        return hash_keys(table.combine_chunks(), self.keys).astype(np.uint64)

    def snapshot(self) -> Any:
        return {"state": self.state, "emitted": self.emitted.tolist()}

    def restore(self, state: Any) -> None:
        self.state = state["state"]
        self.hashes = self._hashes_of(self.state) if self.state is not None else []
        self.emitted = np.array(state["emitted"], dtype=np.uint64)
