"""Tumbling and hopping windows: partial aggregates per time bin, merged when a window fires.

Rows are reduced per batch into bins of gcd(size, slide) ms; a window is the merge of the
bins it covers. A window fires when the watermark passes its end and stays until its end
plus the allowed lateness, so that late rows within it re-emit the result as an update.
"""

from __future__ import annotations

import functools
from math import gcd
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.operator import LATE, Collector, Operator
from engine.timeutil import MIN_WATERMARK, time_values
from operators.window.aggregates import Partials, TwoPhaseAggregate, partials_of_state, partials_state
from operators.window.common import window_result

_COMPACT_AFTER = 8  # partials kept per bin before they are merged into one


def _in_bin(b: int, table: pa.Table) -> pa.Array:
    return pa.array(table.column("__bin").to_numpy() == b)


class BinnedWindow(Operator):
    """Keyed (or global) tumbling / hopping window with two-phase aggregation."""

    def __init__(
        self,
        keys: list[str],
        aggregate: TwoPhaseAggregate,
        size_ms: int,
        slide_ms: int,
        allowed_lateness_ms: int,
        time_column: str,
        schema: pa.Schema,
    ) -> None:
        self.keys = keys
        self.aggregate = aggregate
        self.size = size_ms
        self.slide = slide_ms
        self.lateness = allowed_lateness_ms
        self.bin_width = gcd(size_ms, slide_ms)
        self.time_column = time_column
        self.schema = schema
        # Only the columns the aggregates read: every extra column costs the group-by (the time
        # column is read by first/last).
        read = [a.column for a in aggregate.aggs if a.column] + ([time_column] if aggregate.ordered else [])
        self.needed = list(dict.fromkeys(keys + read))
        self.bins: dict[int, list[Partials]] = {}
        self.watermark = MIN_WATERMARK

    # A window is identified by its start s (a multiple of slide); it covers [s, s + size).
    def _windows_of_bin(self, b: int) -> range:
        last = b // self.slide * self.slide
        first = (b - self.size) // self.slide * self.slide + self.slide
        return range(first, last + 1, self.slide)

    def _bin_expired(self, b: int) -> bool:
        return b // self.slide * self.slide + self.size - 1 + self.lateness <= self.watermark

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if batch.num_rows == 0:
            return
        times = time_values(batch.column(self.time_column)).to_numpy(zero_copy_only=False)
        bins = times // self.bin_width * self.bin_width
        lowest, highest = int(bins.min()), int(bins.max())
        # A row is late when its bin's last window is past the allowed lateness; that end grows
        # with the bin, so the lowest bin tells whether any row of the batch can be late.
        if self.watermark != MIN_WATERMARK and self._bin_expired(lowest):
            # Rows whose every window is past its allowed lateness are late.
            last_end = bins // self.slide * self.slide + self.size
            late = last_end - 1 + self.lateness <= self.watermark
            if late.any():
                late_mask = pa.array(late)
                out.emit_to(LATE, batch.filter(late_mask))
                batch = batch.filter(pc.invert(late_mask))
                bins = bins[~late]
                if batch.num_rows == 0:
                    return
                lowest, highest = int(bins.min()), int(bins.max())
        table = pa.Table.from_batches([batch.select(self.needed)]).append_column("__bin", pa.array(bins))
        partial = self.aggregate.partial(table, self.keys + ["__bin"])
        touched_fired: dict[int, list[pa.Table]] = {}  # fired window start -> the keys late rows changed in it
        # Most batches fall in one bin; only then is it worth skipping the per-bin split.
        distinct_bins = [lowest] if lowest == highest else np.unique(bins).tolist()
        for b in distinct_bins:
            in_bin = partial if len(distinct_bins) == 1 else partial.filter(functools.partial(_in_bin, b))
            per_bin = Partials(in_bin.main.drop_columns(["__bin"]), [d.drop_columns(["__bin"]) for d in in_bin.distinct])
            stored = self.bins.setdefault(b, [])
            stored.append(per_bin)
            if len(stored) > _COMPACT_AFTER:
                self.bins[b] = [self.aggregate.merge(stored, self.keys)]
            for start in self._windows_of_bin(b):
                # A fired window still within its allowed lateness (a hopping row may also
                # fall in windows past it: those are final and their state is gone).
                if start + self.size - 1 <= self.watermark < start + self.size - 1 + self.lateness:
                    touched_fired.setdefault(start, []).append(per_bin.main.select(self.keys))
        # Late rows within the allowed lateness: the windows they changed, again, as updates
        # (for the keys they changed in that window only).
        for start in sorted(touched_fired):
            changed_keys = pa.concat_tables(touched_fired[start]) if self.keys else None
            self._fire([start], out, is_update=True, only_keys=changed_keys)

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        previous, self.watermark = self.watermark, watermark
        ready: set[int] = set()
        for b in self.bins:
            for start in self._windows_of_bin(b):
                if previous < start + self.size - 1 <= watermark:
                    ready.add(start)
        if ready:
            self._fire(sorted(ready), out, is_update=False, only_keys=None)
        for b in [b for b in self.bins if self._bin_expired(b)]:
            del self.bins[b]
        return watermark

    def _fire(self, starts: list[int], out: Collector, is_update: bool, only_keys: pa.Table | None) -> None:
        if only_keys is None and self.size == self.bin_width:
            self._fire_tumbling(starts, out, is_update)
            return
        results = []
        for start in starts:
            partials = [p for b in range(start, start + self.size, self.bin_width) for p in self.bins.get(b, [])]
            if not partials:
                continue
            result = self.aggregate.finalize(partials, self.keys)
            if only_keys is not None:
                result = result.join(only_keys.group_by(self.keys).aggregate([]), self.keys, join_type="left semi")
                result = result.select(self.keys + [a.name for a in self.aggregate.aggs])
            starts_array = pa.repeat(pa.scalar(start, pa.int64()), result.num_rows)
            ends_array = pa.repeat(pa.scalar(start + self.size, pa.int64()), result.num_rows)
            results.append(window_result(result, starts_array, ends_array, len(self.keys), is_update, self.schema))
        if results:
            for batch in pa.concat_tables(results).to_batches():
                out.emit(batch)

    def _fire_tumbling(self, starts: list[int], out: Collector, is_update: bool) -> None:
        """Tumbling windows (one bin each), all at once: one finalize grouped by (window, keys)
        rather than one per window. The rows and their order are those of the windows one
        after the other: each window's groups are its own, and the sorts of the finalize go by
        window first (the time partials of first/last grow with the window too)."""
        starts = [start for start in starts if self.bins.get(start)]
        if not starts:
            return
        parts = []
        for start in starts:
            for p in self.bins[start]:
                window = pa.scalar(start, pa.int64())
                parts.append(
                    Partials(
                        p.main.append_column("__bin", pa.repeat(window, p.main.num_rows)),
                        [d.append_column("__bin", pa.repeat(window, d.num_rows)) for d in p.distinct],
                    )
                )
        # A bin's only partial has one row per key: the windows' partials then merge into nothing new.
        unique = all(len(self.bins[start]) == 1 for start in starts)
        result = self.aggregate.finalize(parts, ["__bin", *self.keys], unique=unique)
        window_starts = result.column(0).combine_chunks()
        ends = pc.add(window_starts, self.size)
        emitted = window_result(result.drop_columns(["__bin"]), window_starts, ends, len(self.keys), is_update, self.schema)
        for batch in emitted.to_batches():
            out.emit(batch)

    def snapshot(self) -> dict[str, Any]:
        """``{"watermark": int, "bins": [bin start per part], "partials": partials_state}``: every
        bin's partials as they are (fired windows within their lateness too), not merged."""
        parts = [(b, p) for b, stored in self.bins.items() for p in stored]
        return {"watermark": self.watermark, "bins": [b for b, _ in parts], "partials": partials_state([p for _, p in parts])}

    def restore(self, state: dict[str, Any]) -> None:
        self.watermark = state["watermark"]
        self.bins = {}
        for b, part in zip(state["bins"], partials_of_state(state["partials"]), strict=True):
            self.bins.setdefault(b, []).append(part)
