"""Helpers on key columns shared by the keyed operators."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def hash_matches(sorted_hashes: np.ndarray, order: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (probe index, row) where a probe's hash equals a row's, by binary search in an
    index of rows sorted by key hash (``order[i]`` is the row of ``sorted_hashes[i]``)."""
    low = np.searchsorted(sorted_hashes, probes, side="left")
    counts = np.searchsorted(sorted_hashes, probes, side="right") - low
    total = int(counts.sum())
    probe_rows = np.repeat(np.arange(len(probes), dtype=np.int64), counts)
    positions = np.arange(total, dtype=np.int64) + np.repeat(low - (np.cumsum(counts) - counts), counts)
    return probe_rows, order[positions]


def key_change(table: pa.Table, keys: list[str]) -> pa.Array:
    """For rows sorted by ``keys``: true where a row's key differs from the previous row's
    (the first row is true). Null keys form a group of their own."""
    n = table.num_rows
    if n == 0:
        return pa.array([], pa.bool_())
    changed = pa.repeat(False, n - 1)
    for key in keys:
        column = table.column(key).combine_chunks()
        after, before = column.slice(1), column.slice(0, n - 1)
        if column.null_count == 0:  # the common case: one comparison, no null bookkeeping
            changed = pc.or_(changed, pc.not_equal(after, before))
            continue
        changed = pc.or_(
            changed,
            pc.or_(pc.fill_null(pc.not_equal(after, before), False), pc.not_equal(pc.is_null(after), pc.is_null(before))),
        )
    return pa.concat_arrays([pa.array([True]), changed])
