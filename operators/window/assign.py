"""Window assignment without aggregation (Flink's window table functions as a relation):
each row gets the start and end of its tumbling window, or one copy per hopping window."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.timeutil import EVENT_TIME_TYPE, time_values


class WindowAssigner:
    """A batch function (for ``Stream.map_batches``) adding window start, end and time (end -
    1 ms) columns, named by ``names``; a row in k hopping windows comes out k times
    (``slide == size`` is a tumbling window). Stateless: a row's windows depend on its time.

    Example:
        >>> import pyarrow as pa
        >>> batch = pa.record_batch({"ts": pa.array([1500, 2500], pa.timestamp("ms", "UTC"))})
        >>> assign = WindowAssigner("ts", 2000, 1000, batch.schema)
        >>> assign(batch).column("window_start").cast(pa.int64()).to_pylist()
        [1000, 2000, 0, 1000]
    """

    def __init__(
        self,
        time_column: str,
        size_ms: int,
        slide_ms: int,
        schema: pa.Schema,
        names: tuple[str, str, str] = ("window_start", "window_end", "window_time"),
    ) -> None:
        self.time_column = time_column
        self.size = size_ms
        self.slide = slide_ms
        self.schema = pa.schema(list(schema) + [pa.field(n, EVENT_TIME_TYPE) for n in names])

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        times = time_values(batch.column(self.time_column)).to_numpy(zero_copy_only=False)
        # The last window of a row starts at floor(t / slide) * slide; earlier ones every slide
        # before it, while they still cover t.
        last = times // self.slide * self.slide
        copies = -(-self.size // self.slide)
        if copies == 1:
            base, start_ms = batch, last
        else:
            rows, starts = [], []
            for k in range(copies):
                start = last - k * self.slide
                index = np.nonzero(start + self.size > times)[0]
                rows.append(index)
                starts.append(start[index])
            base, start_ms = batch.take(pa.array(np.concatenate(rows))), np.concatenate(starts)
        end_ms = start_ms + self.size
        arrays = [
            *base.columns,
            pa.array(start_ms, pa.int64()).cast(EVENT_TIME_TYPE),
            pa.array(end_ms, pa.int64()).cast(EVENT_TIME_TYPE),
            pa.array(end_ms - 1, pa.int64()).cast(EVENT_TIME_TYPE),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
