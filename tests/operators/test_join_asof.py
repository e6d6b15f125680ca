"""As-of join: each left row enriched with the latest right row of its key at or before it."""

from datetime import timedelta

import pyarrow as pa

from engine import Collector, Dataflow, GeneratorSource, InlineExecutor
from engine.timeutil import EVENT_TIME_TYPE, MAX_WATERMARK

LEFT = pa.table({"ts": [1000, 2000, 3000, 5000, 5000], "d": ["a", "a", "b", "a", "c"], "x": [1, 2, 3, 4, 5]})
RIGHT = pa.table({"ts": [500, 1500, 2000, 4000], "d": ["a", "a", "b", "a"], "temp": [10.0, 15.0, 20.0, 40.0]})


def rows(table, columns=None):
    table = table.select(columns or table.column_names)
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def run(executor, left, right, batch_size=10_000, out_of_orderness=0, **options):
    flow = Dataflow("asof")
    left_stream = flow.from_table("left", left, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness)
    right_stream = flow.from_table("right", right, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness)
    joined = left_stream.key_by("d").asof_join(right_stream.key_by("d"), name="enrich", **options)
    joined.collect("out")
    joined.late().collect("late")
    result = executor.run(flow)
    return result.table("out"), result.table("late")


def test_enriched_rows(executor):
    out, late = run(executor, LEFT, RIGHT)
    assert out.column_names == ["ts", "d", "x", "right_ts", "temp"]
    assert out.schema.field("right_ts").type == EVENT_TIME_TYPE
    assert sorted(rows(out)) == [
        (1000, "a", 1, 500, 10.0),
        (2000, "a", 2, 1500, 15.0),
        (3000, "b", 3, 2000, 20.0),  # a right row at the same time would match too
        (5000, "a", 4, 4000, 40.0),
        (5000, "c", 5, None, None),  # no right row for key c: left outer, nulls
    ]
    assert late.num_rows == 0


def test_right_row_at_the_same_time_matches(executor):
    left = pa.table({"ts": [1000, 1999], "d": ["a", "a"], "x": [1, 2]})
    right = pa.table({"ts": [1000, 2000], "d": ["a", "a"], "temp": [1.0, 2.0]})
    out, _ = run(executor, left, right)
    assert sorted(rows(out, ["ts", "right_ts", "temp"])) == [(1000, 1000, 1.0), (1999, 1000, 1.0)]


def test_unmatched_left_rows_get_nulls(executor):
    left = pa.table({"ts": [100, 3000], "d": ["a", "z"], "x": [1, 2]})
    right = pa.table({"ts": [200, 1000], "d": ["a", "a"], "temp": [1.0, 2.0]})
    out, _ = run(executor, left, right)
    # 100: the only right rows of a are after it; z: no right row at all.
    assert sorted(rows(out)) == [(100, "a", 1, None, None), (3000, "z", 2, None, None)]


def test_tolerance(executor):
    out, _ = run(executor, LEFT, RIGHT, tolerance=timedelta(milliseconds=999))
    assert sorted(rows(out, ["ts", "d", "right_ts", "temp"])) == [
        (1000, "a", 500, 10.0),  # 500 ms
        (2000, "a", 1500, 15.0),
        (3000, "b", None, None),  # 1000 ms > 999
        (5000, "a", None, None),
        (5000, "c", None, None),
    ]
    out, _ = run(executor, LEFT, RIGHT, tolerance=1000)  # the bound is inclusive
    assert sorted(rows(out, ["ts", "d", "right_ts"])) == [
        (1000, "a", 500),
        (2000, "a", 1500),
        (3000, "b", 2000),
        (5000, "a", 4000),
        (5000, "c", None),
    ]


def test_tolerance_does_not_fall_back_to_an_older_row(executor):
    left = pa.table({"ts": [3000], "d": ["a"], "x": [1]})
    right = pa.table({"ts": [2900, 1000], "d": ["a", "a"], "temp": [1.0, 2.0]})
    out, _ = run(executor, left, right, tolerance=50)
    assert rows(out, ["ts", "right_ts"]) == [(3000, None)]


def test_right_column_names_clashing_with_the_left_get_the_prefix(executor):
    right = RIGHT.append_column("x", pa.array([7, 8, 9, 10]))
    out, _ = run(executor, LEFT, right, right_prefix="w_")
    assert out.column_names == ["ts", "d", "x", "w_ts", "temp", "w_x"]


def test_batching_and_arrival_order_do_not_change_results(executor):
    expected, _ = run(executor, LEFT, RIGHT)
    for batch_size in (1, 2):
        out, late = run(executor, LEFT, RIGHT, batch_size=batch_size, out_of_orderness=5000)
        assert sorted(rows(out)) == sorted(rows(expected))
        assert late.num_rows == 0


def test_late_left_rows_go_to_the_late_output():
    # Inline only: which rows are late depends on how the two sources interleave, which the
    # inline executor fixes (one batch per source per round) and Ray, where they run apart, does not.
    left = pa.table({"ts": [1000, 3000, 3500, 1500], "d": ["a"] * 4, "x": [1, 2, 3, 4]})
    right = pa.table({"ts": [0, 1000, 2000, 3000], "d": ["a"] * 4, "temp": [0.0, 1.0, 2.0, 3.0]})
    out, late = run(InlineExecutor(), left, right, batch_size=1)
    # One batch per source and round: left 1500 comes in round 4, when the join's watermark
    # (the minimum of both inputs) is 1999 since round 3.
    assert sorted(rows(out, ["ts", "x", "temp"])) == [(1000, 1, 1.0), (3000, 2, 3.0), (3500, 3, 3.0)]
    assert late.column_names == ["ts", "d", "x"]
    assert rows(late, ["ts", "x"]) == [(1500, 4)]


# ---- the operator driven directly -------------------------------------------------------------


LEFT_SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("d", pa.string()), ("x", pa.int64())])
RIGHT_SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("d", pa.string()), ("temp", pa.float64())])


def operator(**options):
    flow = Dataflow("direct")
    left = flow.source("left", GeneratorSource(LEFT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    right = flow.source("right", GeneratorSource(RIGHT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    return left.key_by("d").asof_join(right.key_by("d"), **options).node.factory()


def left_batch(ts, d, x):
    return pa.record_batch(
        [pa.array(ts, pa.int64()).cast(EVENT_TIME_TYPE), pa.array(d), pa.array(x, pa.int64())], schema=LEFT_SCHEMA
    )


def right_batch(ts, d, temp):
    return pa.record_batch(
        [pa.array(ts, pa.int64()).cast(EVENT_TIME_TYPE), pa.array(d), pa.array(temp, pa.float64())], schema=RIGHT_SCHEMA
    )


def right_state(join):
    return sorted(rows(pa.concat_tables(join.right), ["d", "ts"])) if join.right else []


class Outputs:
    def __init__(self):
        self.main, self.late = [], []
        self.collector = Collector({"main": self.main.append, "late": self.late.append})

    def take(self):
        result = sorted(rows(pa.Table.from_batches(self.main), ["ts", "d", "right_ts", "temp"])) if self.main else []
        self.main.clear()
        return result


def test_left_rows_wait_for_the_watermark():
    join, out = operator(), Outputs()
    join.process_batch(left_batch([1000], ["a"], [1]), 0, out.collector)
    join.on_watermark(500, out.collector)
    assert out.take() == []  # a right row at or before 1000 may still come
    join.process_batch(right_batch([900], ["a"], [9.0]), 1, out.collector)
    join.on_watermark(999, out.collector)
    assert out.take() == []
    join.on_watermark(1000, out.collector)
    assert out.take() == [(1000, "a", 900, 9.0)]
    assert join.pending == []


def test_right_state_is_trimmed_by_the_watermark():
    join, out = operator(), Outputs()
    join.process_batch(
        right_batch([100, 200, 300, 2000, 150], ["a", "a", "a", "a", "b"], [1.0, 2.0, 3.0, 4.0, 5.0]), 1, out.collector
    )
    join.on_watermark(250, out.collector)
    # Per key, the latest row at or before the watermark, and every row after it.
    assert right_state(join) == [("a", 200), ("a", 300), ("a", 2000), ("b", 150)]
    join.on_watermark(1000, out.collector)
    assert right_state(join) == [("a", 300), ("a", 2000), ("b", 150)]
    join.on_watermark(5000, out.collector)
    assert right_state(join) == [("a", 2000), ("b", 150)]
    # What was kept is what a later left row needs.
    join.process_batch(left_batch([6000, 6000], ["a", "b"], [1, 2]), 0, out.collector)
    join.on_watermark(6000, out.collector)
    assert out.take() == [(6000, "a", 2000, 4.0), (6000, "b", 150, 5.0)]


def test_right_state_with_tolerance_keeps_only_what_the_tolerance_allows():
    join, out = operator(tolerance=1000), Outputs()
    join.process_batch(right_batch([100, 500, 1500, 3000], ["a", "b", "a", "a"], [1.0, 2.0, 3.0, 4.0]), 1, out.collector)
    join.on_watermark(1499, out.collector)
    # A left row still to come is after 1499, so it can use right rows from 500 on.
    assert right_state(join) == [("a", 1500), ("a", 3000), ("b", 500)]
    join.on_watermark(2600, out.collector)
    assert right_state(join) == [("a", 3000)]
    join.on_watermark(MAX_WATERMARK, out.collector)
    assert right_state(join) == []


def test_late_left_rows_directly():
    join, out = operator(), Outputs()
    join.process_batch(right_batch([100], ["a"], [1.0]), 1, out.collector)
    join.on_watermark(1000, out.collector)
    join.process_batch(left_batch([999, 1000, 1001], ["a", "a", "a"], [1, 2, 3]), 0, out.collector)
    assert rows(pa.Table.from_batches(out.late), ["ts", "x"]) == [(999, 1), (1000, 2)]
    join.on_watermark(1001, out.collector)
    assert out.take() == [(1001, "a", 100, 1.0)]


def test_the_join_forwards_the_watermark():
    join, out = operator(), Outputs()
    assert join.on_watermark(1234, out.collector) == 1234
