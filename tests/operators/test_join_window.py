"""Window join: rows of the same window and key joined when the window fires; outer joins,
residual condition, global joins, renamed window columns, late rows, build-time errors."""

import pyarrow as pa
import pytest

from engine import Collector, Dataflow, GeneratorSource, InlineExecutor, OptionError, PlanError, col
from engine.timeutil import EVENT_TIME_TYPE, MAX_WATERMARK
from operators import Tumbling, agg

SIZE = 10_000
CARS = pa.table({"ts": [1000, 2000, 3000, 11000, 12000, 21000, 25000], "d": ["a", "a", "b", "a", "b", "b", "a"]})
RAIN = pa.table(
    {"ts": [1500, 4000, 13000, 14000, 22000, 35000], "d": ["a", "c", "b", "b", "a", "a"], "mm": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}
)


def rows(table, columns=None):
    table = table.select(columns or table.column_names)
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def per_window(table, value=None):
    """(window start, d) -> count of rows, or sum of ``value``: the tumbling aggregates, in Python."""
    result = {}
    for row in table.to_pylist():
        key = (row["ts"] // SIZE * SIZE, row["d"])
        result[key] = result.get(key, 0) + (1 if value is None else row[value])
    return result


def expected(how, condition=lambda cars, rain: True):
    """Rows (window_start, window_end, window_time, d, cars, rain) of a window join of the counts
    of CARS with the rain sums of RAIN per window and district, as ``how`` says."""
    cars, rain = per_window(CARS), per_window(RAIN, "mm")
    out, matched_left, matched_right = [], set(), set()
    for lkey, count in cars.items():
        for rkey, total in rain.items():
            if lkey == rkey and condition(count, total):
                out.append((lkey, count, total))
                matched_left.add(lkey)
                matched_right.add(rkey)
    if how in ("left", "full"):
        out += [(k, count, None) for k, count in cars.items() if k not in matched_left]
    if how in ("right", "full"):
        out += [(k, None, total) for k, total in rain.items() if k not in matched_right]
    return sorted(((s, s + SIZE, s + SIZE - 1, d, count, total) for (s, d), count, total in out), key=repr)


COLUMNS = ["window_start", "window_end", "window_time", "d", "cars", "rain"]


def windowed(flow, batch_size=10_000):
    cars = flow.from_table("cars", CARS, event_time="ts", batch_size=batch_size)
    rain = flow.from_table("rain", RAIN, event_time="ts", batch_size=batch_size)
    counts = cars.key_by("d").window(Tumbling(SIZE), [agg("count", name="cars")], name="counts")
    rainfall = rain.key_by("d").window(Tumbling(SIZE), [agg("sum", "mm", name="rain")], name="rainfall")
    return counts, rainfall


def run(executor, batch_size=10_000, keyed=True, parallelism=None, **options):
    flow = Dataflow("window_join")
    counts, rainfall = windowed(flow, batch_size)
    if keyed:
        counts, rainfall = counts.key_by("d"), rainfall.key_by("d")
    joined = counts.window_join(rainfall, name="joined", **options)
    if parallelism:
        joined.with_parallelism(parallelism)
    joined.collect("out")
    joined.late().collect("late")
    joined.side_output("late_right").collect("late_right")
    result = executor.run(flow)
    return result.table("out"), result.table("late"), result.table("late_right")


def test_window_join_of_two_tumbling_aggregates(executor):
    for batch_size in (1, 10_000):
        out, late, late_right = run(executor, batch_size=batch_size)
        assert out.column_names == [
            "d",
            "window_start",
            "window_end",
            "window_time",
            "cars",
            "is_update",
            "right_window_time",
            "rain",
            "right_is_update",
        ]
        assert sorted(rows(out, COLUMNS), key=repr) == expected("inner"), batch_size
        assert late.num_rows == late_right.num_rows == 0


@pytest.mark.parametrize("how", ["left", "right", "full"])
def test_outer_joins(executor, how):
    out, _, _ = run(executor, how=how)
    assert sorted(rows(out, COLUMNS), key=repr) == expected(how)
    # An unmatched right row carries its own key, window and event time in the left's columns.
    if how != "left":
        assert (30000, 40000, 39999, "a", None, 6.0) in rows(out, COLUMNS)


KEPT = ["window_start", "window_end", "d", "cars", "right_d", "right_window_start", "right_window_end", "rain"]


def with_right_keys(row):
    """An ``expected`` row as KEPT: the right's key and window are set where a right row is."""
    start, end, _, d, cars, rain = row
    right = (d, start, end) if rain is not None else (None, None, None)
    return (start, end, d, cars, *right, rain)


@pytest.mark.parametrize("how", ["inner", "left", "right", "full"])
def test_keep_right_keys_gives_the_right_its_own_key_and_window(executor, how):
    out, _, _ = run(executor, how=how, keep_right_keys=True)
    assert out.column_names == [
        "d",
        "window_start",
        "window_end",
        "window_time",
        "cars",
        "is_update",
        "right_d",
        "right_window_start",
        "right_window_end",
        "right_window_time",
        "rain",
        "right_is_update",
    ]
    # Null where no right row matched; an unmatched right row still fills the left's key and
    # window with its own.
    assert sorted(rows(out, KEPT), key=repr) == sorted(map(with_right_keys, expected(how)), key=repr)
    if how in ("left", "full"):
        assert (0, 10000, "b", 1, None, None, None, None) in rows(out, KEPT)
    if how in ("right", "full"):
        assert (30000, 40000, "a", None, "a", 30000, 40000, 6.0) in rows(out, KEPT)


def test_keep_right_keys_with_renamed_windows_and_no_keys(executor):
    # No clash: the right's window columns keep their names; without keys only they are kept.
    flow = Dataflow("kept")
    counts, rainfall = windowed(flow)
    rainfall = rainfall.select("d", "rain", "window_time", starttime=col("window_start"), endtime=col("window_end"))
    joined = counts.window_join(
        rainfall, right_window=("starttime", "endtime"), how="left", keep_right_keys=True, condition=col("d") == col("right_d")
    )
    joined.collect("out")
    out = executor.run(flow).table("out")
    assert out.column_names == [
        "d",
        "window_start",
        "window_end",
        "window_time",
        "cars",
        "is_update",
        "right_d",
        "rain",
        "right_window_time",
        "starttime",
        "endtime",
    ]
    columns = ["window_start", "window_end", "d", "cars", "right_d", "starttime", "endtime", "rain"]
    assert sorted(rows(out, columns), key=repr) == sorted(map(with_right_keys, expected("left")), key=repr)


def test_parallel_keyed_join_gives_the_same_rows(executor):
    out, _, _ = run(executor, parallelism=2, how="full")
    assert sorted(rows(out, COLUMNS), key=repr) == expected("full")


def test_residual_condition(executor):
    out, _, _ = run(executor, condition=col("rain") > col("cars").cast(pa.float64()))
    assert sorted(rows(out, COLUMNS), key=repr) == expected("inner", lambda cars, rain: rain > cars)
    # With an outer join, a left row whose pairs all fail the condition is padded instead.
    out, _, _ = run(executor, how="left", condition=col("rain") > 100.0)
    assert sorted(rows(out, COLUMNS), key=repr) == expected("left", lambda cars, rain: False)


def test_global_window_join_with_a_condition(executor):
    # No keys: every row of a window meets every row of the other side's same window; the
    # right's district is then a column of its own (right_d). One task runs it.
    out, _, _ = run(executor, keyed=False, condition=col("d") != col("right_d"))
    cars, rain = per_window(CARS), per_window(RAIN, "mm")
    assert sorted(rows(out, ["window_start", "d", "right_d", "cars", "rain"])) == sorted(
        (ls, ld, rd, count, total)
        for (ls, ld), count in cars.items()
        for (rs, rd), total in rain.items()
        if ls == rs and ld != rd
    )


def test_renamed_window_columns(executor):
    flow = Dataflow("renamed")
    counts, rainfall = windowed(flow)
    rainfall = rainfall.select("d", "rain", "window_time", starttime=col("window_start"), endtime=col("window_end"))
    joined = counts.key_by("d").window_join(rainfall.key_by("d"), right_window=("starttime", "endtime"))
    joined.collect("out")
    out = executor.run(flow).table("out")
    assert out.column_names == [
        "d",
        "window_start",
        "window_end",
        "window_time",
        "cars",
        "is_update",
        "rain",
        "right_window_time",
    ]
    assert sorted(rows(out, COLUMNS), key=repr) == expected("inner")


# Rows that carry their window, as a window table function gives them.
def tagged(ts, d, value, name):
    starts = [t // SIZE * SIZE for t in ts]
    return pa.table(
        {
            "ts": ts,
            "d": d,
            "window_start": pa.array(starts, pa.int64()).cast(EVENT_TIME_TYPE),
            "window_end": pa.array([s + SIZE for s in starts], pa.int64()).cast(EVENT_TIME_TYPE),
            name: value,
        }
    )


def test_late_rows_go_to_the_late_outputs():
    # Inline only: which rows are late depends on how the two sources interleave, which the
    # inline executor fixes (one batch per source per round) and Ray does not.
    left = tagged([1000, 12000, 3000, 15000], ["a"] * 4, [1, 2, 3, 4], "x")
    right = tagged([2000, 15000, 4000, 16000], ["a"] * 4, [1.0, 2.0, 3.0, 4.0], "temp")
    flow = Dataflow("late")
    left_stream = flow.from_table("left", left, event_time="ts", batch_size=1)
    right_stream = flow.from_table("right", right, event_time="ts", batch_size=1)
    joined = left_stream.key_by("d").window_join(right_stream.key_by("d"), how="full")
    joined.collect("out")
    joined.late().collect("late")
    joined.side_output("late_right").collect("late_right")
    result = InlineExecutor().run(flow)
    # Round 2 brings the join's watermark to 12000: window [0, 10 s) fires; in round 3 rows of it come late.
    assert sorted(rows(result.table("out"), ["window_start", "ts", "x", "right_ts", "temp"])) == [
        (0, 1000, 1, 2000, 1.0),
        (10000, 12000, 2, 15000, 2.0),
        (10000, 12000, 2, 16000, 4.0),
        (10000, 15000, 4, 15000, 2.0),
        (10000, 15000, 4, 16000, 4.0),
    ]
    assert rows(result.table("late"), ["ts", "x"]) == [(3000, 3)]
    assert rows(result.table("late_right"), ["ts", "temp"]) == [(4000, 3.0)]


# ---- build-time errors ------------------------------------------------------------------------


def test_missing_or_mistyped_window_column():
    flow = Dataflow("errors")
    counts, rainfall = windowed(flow)
    with pytest.raises(PlanError, match="right window column does not exist") as error:
        counts.window_join(rainfall, right_window=("starttime", "endtime"), name="j")
    assert (error.value.operator, error.value.column) == ("j", "starttime")
    with pytest.raises(PlanError, match="must be a timestamp") as error:
        counts.window_join(rainfall, left_window=("window_start", "cars"), name="j2")
    assert error.value.column == "cars"
    with pytest.raises(OptionError, match="left_window"):
        counts.window_join(rainfall, left_window=("window_start",))


def test_key_types_must_match():
    flow = Dataflow("errors")
    counts, rainfall = windowed(flow)
    with pytest.raises(PlanError, match="key types differ") as error:
        counts.key_by("d").window_join(rainfall.key_by("rain"), name="j")
    assert error.value.column == "rain"


def test_key_by_on_one_side_only():
    flow = Dataflow("errors")
    counts, rainfall = windowed(flow)
    with pytest.raises(PlanError, match="only the left side is key_by'd"):
        counts.key_by("d").window_join(rainfall)
    with pytest.raises(PlanError, match="only the right side is key_by'd"):
        counts.window_join(rainfall.key_by("d"))


def test_bad_how_and_condition():
    flow = Dataflow("errors")
    counts, rainfall = windowed(flow)
    with pytest.raises(OptionError, match="'inner' or 'left' or 'right' or 'full'"):
        counts.window_join(rainfall, how="semi")
    with pytest.raises(PlanError, match="not a boolean") as error:
        counts.window_join(rainfall, condition=col("rain") * 2, name="j")
    assert error.value.operator == "j"
    with pytest.raises(OptionError, match="keep_right_keys"):
        counts.window_join(rainfall, keep_right_keys="yes")


# ---- the operator driven directly -------------------------------------------------------------

LEFT_SCHEMA = pa.schema(
    [
        ("ts", EVENT_TIME_TYPE),
        ("d", pa.string()),
        ("window_start", EVENT_TIME_TYPE),
        ("window_end", EVENT_TIME_TYPE),
        ("x", pa.int64()),
    ]
)
RIGHT_SCHEMA = pa.schema(
    [
        ("ts", EVENT_TIME_TYPE),
        ("d", pa.string()),
        ("window_start", EVENT_TIME_TYPE),
        ("window_end", EVENT_TIME_TYPE),
        ("temp", pa.float64()),
    ]
)


def operator(**options):
    flow = Dataflow("direct")
    left = flow.source("left", GeneratorSource(LEFT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    right = flow.source("right", GeneratorSource(RIGHT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    return left.key_by("d").window_join(right.key_by("d"), **options).node.factory()


def batch(schema, ts, d, value):
    starts = [t // SIZE * SIZE for t in ts]
    times = [ts, starts, [s + SIZE for s in starts]]
    ts_array, start_array, end_array = (pa.array(t, pa.int64()).cast(EVENT_TIME_TYPE) for t in times)
    return pa.record_batch([ts_array, pa.array(d), start_array, end_array, pa.array(value, schema.field(4).type)], schema=schema)


class Outputs:
    def __init__(self):
        self.main, self.late, self.late_right = [], [], []
        self.collector = Collector({"main": self.main.append, "late": self.late.append, "late_right": self.late_right.append})

    def take(self, columns):
        emitted = rows(pa.Table.from_batches(self.main), columns) if self.main else []
        self.main.clear()
        return sorted(emitted, key=repr)


def test_a_window_fires_when_the_watermark_reaches_its_end_minus_one():
    join, out = operator(), Outputs()
    join.process_batch(batch(LEFT_SCHEMA, [1000, 15000], ["a", "a"], [1, 2]), 0, out.collector)
    join.process_batch(batch(RIGHT_SCHEMA, [9000, 12000], ["a", "a"], [1.0, 2.0]), 1, out.collector)
    assert join.on_watermark(9998, out.collector) == 9998
    assert out.take(["x"]) == []
    join.on_watermark(9999, out.collector)
    assert out.take(["x", "temp"]) == [(1, 1.0)]
    assert sorted(join.buffers[0]) == sorted(join.buffers[1]) == [20000]  # the fired window's state is gone
    # A row of the fired window is late; one of the open window still joins.
    join.process_batch(batch(RIGHT_SCHEMA, [5000, 19000], ["a", "a"], [3.0, 4.0]), 1, out.collector)
    assert rows(pa.Table.from_batches(out.late_right), ["temp"]) == [(3.0,)]
    join.on_watermark(MAX_WATERMARK, out.collector)
    assert out.take(["x", "temp"]) == [(2, 2.0), (2, 4.0)]
    assert join.buffers == ({}, {})


def test_a_batch_of_several_windows_is_filed_by_window():
    join, out = operator(how="left"), Outputs()
    join.process_batch(batch(LEFT_SCHEMA, [35000, 1000, 25000, 2000], ["a"] * 4, [1, 2, 3, 4]), 0, out.collector)
    assert {end: sum(t.num_rows for t in tables) for end, tables in join.buffers[0].items()} == {10000: 2, 30000: 1, 40000: 1}
    join.on_watermark(29999, out.collector)
    assert out.take(["window_start", "x", "temp"]) == [(0, 2, None), (0, 4, None), (20000, 3, None)]


def test_keep_right_keys_in_padded_rows():
    join, out = operator(how="full", keep_right_keys=True), Outputs()
    join.process_batch(batch(LEFT_SCHEMA, [1000, 2000], ["a", "b"], [1, 2]), 0, out.collector)
    join.process_batch(batch(RIGHT_SCHEMA, [3000, 4000], ["a", "c"], [5.0, 6.0]), 1, out.collector)
    join.on_watermark(MAX_WATERMARK, out.collector)
    assert out.take(["d", "window_start", "x", "right_d", "right_window_start", "right_window_end", "temp"]) == [
        ("a", 0, 1, "a", 0, 10000, 5.0),
        ("b", 0, 2, None, None, None, None),  # no right row: the right's key and window are null
        ("c", 0, None, "c", 0, 10000, 6.0),
    ]


def test_snapshot_and_restore():
    join, out = operator(how="full"), Outputs()
    join.process_batch(batch(LEFT_SCHEMA, [1000, 15000], ["a", "b"], [1, 2]), 0, out.collector)
    join.process_batch(batch(RIGHT_SCHEMA, [3000], ["a"], [5.0]), 1, out.collector)
    join.on_watermark(500, out.collector)
    state = join.snapshot()
    assert state["watermark"] == 500
    assert sorted(rows(state["left"], ["x"])) == [(1,), (2,)]
    assert rows(state["right"], ["temp"]) == [(5.0,)]
    restored = operator(how="full")
    restored.restore(state)
    restored.process_batch(batch(RIGHT_SCHEMA, [100], ["a"], [6.0]), 1, out.collector)
    restored.on_watermark(MAX_WATERMARK, out.collector)
    assert out.take(["d", "x", "temp"]) == [("a", 1, 5.0), ("a", 1, 6.0), ("b", 2, None)]
