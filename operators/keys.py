"""Helpers on key columns shared by the keyed operators."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


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
        changed = pc.or_(
            changed,
            pc.or_(pc.fill_null(pc.not_equal(after, before), False), pc.not_equal(pc.is_null(after), pc.is_null(before))),
        )
    return pa.concat_arrays([pa.array([True]), changed])
