"""What every window operator shares: the spec options, the output columns and their schema."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from engine.timeutil import EVENT_TIME_TYPE

WINDOW_START = "window_start"
WINDOW_END = "window_end"
WINDOW_TIME = "window_time"
IS_UPDATE = "is_update"


def window_output_schema(key_fields: list[pa.Field], agg_fields: list[pa.Field]) -> pa.Schema:
    """keys, window_start, window_end, window_time (= window_end - 1 ms, the event time of a
    result, as in Flink SQL), the aggregates, and is_update (true when a late row changed a
    result that was already emitted)."""
    return pa.schema(
        key_fields
        + [
            pa.field(WINDOW_START, EVENT_TIME_TYPE),
            pa.field(WINDOW_END, EVENT_TIME_TYPE),
            pa.field(WINDOW_TIME, EVENT_TIME_TYPE),
        ]
        + agg_fields
        + [pa.field(IS_UPDATE, pa.bool_())]
    )


def window_result(
    result: pa.Table, starts: pa.Array, ends: pa.Array, key_count: int, is_update: bool, schema: pa.Schema
) -> pa.Table:
    """Adds the window columns to a finalised aggregate table (keys first, then aggregates)."""
    columns = result.columns
    rows = result.num_rows
    ends_ts = ends.cast(EVENT_TIME_TYPE)
    window_time = pa.array(pc.subtract(ends.cast(pa.int64()), 1)).cast(EVENT_TIME_TYPE)
    arrays = (
        columns[:key_count]
        + [starts.cast(EVENT_TIME_TYPE), ends_ts, window_time]
        + columns[key_count:]
        + [pa.repeat(pa.scalar(is_update), rows)]
    )
    return pa.Table.from_arrays(arrays, schema=schema)
