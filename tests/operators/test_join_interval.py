"""Interval join: pairs of rows of the same key with lower <= left time - right time <= upper."""

from datetime import timedelta

import pyarrow as pa
import pytest

from engine import Collector, Dataflow, GeneratorSource, InlineExecutor
from engine.timeutil import EVENT_TIME_TYPE, MAX_WATERMARK

LEFT = pa.table({"ts": [1000, 2000, 3000, 5000], "d": ["a", "a", "b", "a"], "x": [1, 2, 3, 4]})
RIGHT = pa.table({"ts": [500, 1500, 2000, 4000, 9000], "d": ["a", "a", "b", "a", "a"], "temp": [10.0, 15.0, 20.0, 40.0, 90.0]})


def rows(table, columns=None):
    table = table.select(columns or table.column_names)
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def run(executor, left, right, batch_size=10_000, out_of_orderness=0, **options):
    flow = Dataflow("interval")
    left_stream = flow.from_table("left", left, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness)
    right_stream = flow.from_table("right", right, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness)
    joined = left_stream.key_by("d").interval_join(right_stream.key_by("d"), name="pairs", **options)
    joined.collect("out")
    joined.late().collect("late")
    joined.side_output("late_right").collect("late_right")
    result = executor.run(flow)
    return result.table("out"), result.table("late"), result.table("late_right")


def pairs(out):
    return sorted(rows(out, ["ts", "d", "right_ts"]))


def test_symmetric_interval(executor):
    out, late, late_right = run(executor, LEFT, RIGHT, within=timedelta(seconds=1))
    assert out.column_names == ["ts", "d", "x", "right_ts", "temp"]
    assert sorted(rows(out)) == [
        (1000, "a", 1, 500, 10.0),
        (1000, "a", 1, 1500, 15.0),
        (2000, "a", 2, 1500, 15.0),
        (3000, "b", 3, 2000, 20.0),  # exactly 1000 ms: bounds are inclusive
        (5000, "a", 4, 4000, 40.0),
    ]
    assert late.num_rows == late_right.num_rows == 0


def test_bounds_are_inclusive(executor):
    left = pa.table({"ts": [1000], "d": ["a"], "x": [1]})
    right = pa.table({"ts": [499, 500, 1000, 1500, 1501], "d": ["a"] * 5, "temp": [1.0, 2.0, 3.0, 4.0, 5.0]})
    out, _, _ = run(executor, left, right, within=500)
    assert pairs(out) == [(1000, "a", 500), (1000, "a", 1000), (1000, "a", 1500)]


def test_asymmetric_bounds(executor):
    # -500 <= left - right <= 1000: right from 1000 ms before to 500 ms after the left row.
    out, _, _ = run(executor, LEFT, RIGHT, lower=-500, upper=1000)
    assert pairs(out) == [
        (1000, "a", 500),
        (1000, "a", 1500),
        (2000, "a", 1500),
        (3000, "b", 2000),
        (5000, "a", 4000),
    ]
    # 200 <= left - right <= 1000: right rows strictly before the left one.
    out, _, _ = run(executor, LEFT, RIGHT, lower=200, upper=1000)
    assert pairs(out) == [(1000, "a", 500), (2000, "a", 1500), (3000, "b", 2000), (5000, "a", 4000)]
    # -1500 <= left - right <= -500: right rows after the left one.
    out, _, _ = run(executor, LEFT, RIGHT, lower=-1500, upper=-500)
    assert pairs(out) == [(1000, "a", 1500)]


def test_bounds_given_as_timedelta(executor):
    out, _, _ = run(executor, LEFT, RIGHT, lower=timedelta(milliseconds=-500), upper=timedelta(seconds=1))
    assert pairs(out) == [
        (1000, "a", 500),
        (1000, "a", 1500),
        (2000, "a", 1500),
        (3000, "b", 2000),
        (5000, "a", 4000),
    ]


@pytest.mark.parametrize(
    ("lower", "upper", "as_ms"),
    [
        (timedelta(milliseconds=200), timedelta(seconds=1), (200, 1000)),
        (timedelta(milliseconds=-1500), timedelta(milliseconds=-500), (-1500, -500)),
    ],
)
def test_timedelta_bounds_of_either_sign_mean_what_ints_mean(executor, lower, upper, as_ms):
    with_ints, _, _ = run(executor, LEFT, RIGHT, lower=as_ms[0], upper=as_ms[1])
    with_timedeltas, _, _ = run(executor, LEFT, RIGHT, lower=lower, upper=upper)
    assert pairs(with_timedeltas) == pairs(with_ints)


def test_inner_join_drops_unmatched_rows(executor):
    left = pa.table({"ts": [1000, 1000], "d": ["a", "z"], "x": [1, 2]})
    right = pa.table({"ts": [5000, 1000], "d": ["a", "y"], "temp": [1.0, 2.0]})
    out, _, _ = run(executor, left, right, within=100)
    assert out.num_rows == 0


def test_many_to_many(executor):
    left = pa.table({"ts": [1000, 1100], "d": ["a", "a"], "x": [1, 2]})
    right = pa.table({"ts": [1050, 1060, 1070], "d": ["a", "a", "a"], "temp": [1.0, 2.0, 3.0]})
    out, _, _ = run(executor, left, right, within=100)
    assert len(pairs(out)) == 6


def test_batching_and_arrival_order_do_not_change_results(executor):
    expected, _, _ = run(executor, LEFT, RIGHT, lower=-500, upper=1000)
    for batch_size in (1, 2, 3):
        out, late, late_right = run(executor, LEFT, RIGHT, batch_size=batch_size, out_of_orderness=10_000, lower=-500, upper=1000)
        assert sorted(rows(out)) == sorted(rows(expected))  # each pair exactly once
        assert late.num_rows == late_right.num_rows == 0


def test_late_rows_of_both_sides():
    # Inline only: which rows are late depends on how the two sources interleave, which the
    # inline executor fixes (one batch per source per round) and Ray, where they run apart, does not.
    left = pa.table({"ts": [1000, 3000, 4000, 1500], "d": ["a"] * 4, "x": [1, 2, 3, 4]})
    right = pa.table({"ts": [1000, 3000, 1200, 5000], "d": ["a"] * 4, "temp": [1.0, 2.0, 3.0, 4.0]})
    out, late, late_right = run(InlineExecutor(), left, right, batch_size=1, within=500)
    # Round 3: right 1200 meets the join's watermark 2999; round 4: left 1500 meets 2999 too.
    assert pairs(out) == [(1000, "a", 1000), (3000, "a", 3000)]
    assert rows(late, ["ts", "x"]) == [(1500, 4)]
    assert rows(late_right, ["ts", "temp"]) == [(1200, 3.0)]


# ---- the operator driven directly -------------------------------------------------------------

LEFT_SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("d", pa.string()), ("x", pa.int64())])
RIGHT_SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("d", pa.string()), ("temp", pa.float64())])


def operator(**options):
    flow = Dataflow("direct")
    left = flow.source("left", GeneratorSource(LEFT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    right = flow.source("right", GeneratorSource(RIGHT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    return left.key_by("d").interval_join(right.key_by("d"), **options).node.factory()


def batch(schema, ts, d, value):
    return pa.record_batch(
        [pa.array(ts, pa.int64()).cast(EVENT_TIME_TYPE), pa.array(d), pa.array(value, schema.field(2).type)], schema=schema
    )


def buffered(join, side):
    return sorted(rows(pa.concat_tables(join.buffers[side]), ["ts"])) if join.buffers[side] else []


def test_pairs_are_emitted_when_the_second_row_arrives():
    join = operator(lower=-500, upper=1000)
    emitted, late = [], []
    out = Collector({"main": emitted.append, "late": late.append, "late_right": late.append})
    join.process_batch(batch(LEFT_SCHEMA, [1000], ["a"], [1]), 0, out)
    assert emitted == []
    # Differences 1001, 500, -500 and -501: the two in [-500, 1000] pair.
    join.process_batch(batch(RIGHT_SCHEMA, [-1, 500, 1500, 1501], ["a"] * 4, [1.0, 2.0, 3.0, 4.0]), 1, out)
    assert sorted(rows(pa.Table.from_batches(emitted), ["ts", "right_ts"])) == [(1000, 500), (1000, 1500)]
    emitted.clear()
    # A later left row pairs with the buffered right rows (and of its key only).
    join.process_batch(batch(LEFT_SCHEMA, [2000, 2000], ["a", "b"], [2, 3]), 0, out)
    assert sorted(rows(pa.Table.from_batches(emitted), ["ts", "d", "right_ts"])) == [(2000, "a", 1500), (2000, "a", 1501)]
    assert late == []


def test_buffers_are_trimmed_by_the_watermark_and_the_watermark_held_back():
    join = operator(lower=-500, upper=1000)
    emitted = []
    out = Collector({"main": emitted.append, "late": emitted.append, "late_right": emitted.append})
    join.process_batch(batch(LEFT_SCHEMA, [1000, 2000], ["a", "a"], [1, 2]), 0, out)
    join.process_batch(batch(RIGHT_SCHEMA, [500, 1500], ["a", "a"], [1.0, 2.0]), 1, out)
    # After watermark W every row still to come is later than W, so a left row is kept while
    # time > W + lower (W - 500) and a right row while time > W - upper (W - 1000).
    forwarded = join.on_watermark(1400, out)
    assert buffered(join, 0) == [(1000,), (2000,)]
    assert buffered(join, 1) == [(500,), (1500,)]
    # A left row at 1000 may still meet a right row up to 1500: hold the watermark 500 back.
    assert forwarded == 900
    join.on_watermark(1600, out)
    assert buffered(join, 0) == [(2000,)]
    assert buffered(join, 1) == [(1500,)]
    join.on_watermark(2600, out)
    assert buffered(join, 0) == []
    assert buffered(join, 1) == []
    assert join.on_watermark(MAX_WATERMARK, out) >= MAX_WATERMARK - 500


def test_watermark_is_not_held_back_when_lower_is_positive():
    join = operator(lower=200, upper=1000)
    out = Collector({"main": list().append, "late": list().append, "late_right": list().append})
    assert join.on_watermark(5000, out) == 5000
