"""Regular join: every pair of rows of the same key, once, whatever the batching; residual
condition, state TTL, parallelism, sinks after it, and build-time errors."""

import pyarrow as pa
import pytest

from engine import Collector, Dataflow, GeneratorSource, InlineExecutor, OptionError, PlanError, col
from engine.timeutil import EVENT_TIME_TYPE
from operators.join.regular import RegularJoin

LEFT = pa.table({"ts": [1000, 2000, 3000, 4000, 5000, 6000], "d": ["a", "a", "b", "a", "c", None], "x": [1, 2, 3, 4, 5, 6]})
RIGHT = pa.table(
    {
        "ts": [500, 2500, 3500, 4500, 9000, 9500],
        "d": ["a", "b", "a", "b", "z", None],
        "temp": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    }
)


def rows(table, columns=None):
    table = table.select(columns or table.column_names)
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def brute_force(left, right, condition=lambda lrow, rrow: True):
    """Every (left row, right row) of equal non-null keys, as output rows (ts, d, x, right_ts, temp)."""
    return sorted(
        (*lrow, rrow[0], rrow[2])
        for lrow in rows(left)
        for rrow in rows(right)
        if lrow[1] is not None and lrow[1] == rrow[1] and condition(lrow, rrow)
    )


def build(flow, left, right, batch_size=10_000, out_of_orderness=0, **options):
    left_stream = flow.from_table("left", left, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness)
    right_stream = flow.from_table("right", right, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness)
    return left_stream.key_by("d").join(right_stream.key_by("d"), name="pairs", **options)


def run(executor, left, right, parallelism=None, **options):
    flow = Dataflow("regular")
    joined = build(flow, left, right, **options)
    if parallelism:
        joined.with_parallelism(parallelism)
    joined.collect("out")
    return executor.run(flow).table("out")


def test_cross_product_per_key_once_whatever_the_batching(executor):
    expected = brute_force(LEFT, RIGHT)
    # a: 3 left x 2 right, b: 1 x 2; c, z and the null keys pair with nothing.
    assert len(expected) == 8
    for batch_size in (1, 10_000):
        out = run(executor, LEFT, RIGHT, batch_size=batch_size)
        assert out.column_names == ["ts", "d", "x", "right_ts", "temp"]
        assert sorted(rows(out)) == expected, batch_size


def test_pairs_do_not_depend_on_time_order(executor):
    # Rows far apart in time and out of order still pair: a regular join has no time bound.
    left = pa.table({"ts": [100_000, 1000], "d": ["a", "a"], "x": [1, 2]})
    right = pa.table({"ts": [50_000, 999_000], "d": ["a", "a"], "temp": [1.0, 2.0]})
    out = run(executor, left, right, batch_size=1, out_of_orderness=1_000_000)
    assert sorted(rows(out)) == brute_force(left, right)
    assert len(rows(out)) == 4


def test_residual_condition(executor):
    out = run(executor, LEFT, RIGHT, condition=col("temp") > col("x") * 10 + 5)
    assert sorted(rows(out)) == brute_force(LEFT, RIGHT, lambda lrow, rrow: rrow[2] > lrow[2] * 10 + 5)
    assert 0 < out.num_rows < len(brute_force(LEFT, RIGHT))


def test_parallel_join_gives_the_same_pairs(executor):
    expected = brute_force(LEFT, RIGHT)
    out = run(executor, LEFT, RIGHT, parallelism=2, batch_size=2)
    assert sorted(rows(out)) == expected


def test_clashing_right_columns_are_prefixed_and_keys_differently_named(executor):
    left = pa.table({"ts": [1000], "k": ["a"], "v": [1]})
    right = pa.table({"ts": [2000], "district": ["a"], "v": [2]})
    flow = Dataflow("names")
    left_stream = flow.from_table("left", left, event_time="ts")
    right_stream = flow.from_table("right", right, event_time="ts")
    left_stream.key_by("k").join(right_stream.key_by("district"), right_prefix="r_").collect("out")
    out = executor.run(flow).table("out")
    assert out.column_names == ["ts", "k", "v", "r_ts", "r_v"]
    assert rows(out) == [(1000, "a", 1, 2000, 2)]


def test_output_has_no_event_time_and_sinks_work_after_it(executor):
    flow = Dataflow("sinks")
    joined = build(flow, LEFT, RIGHT)
    assert joined.node.event_time == {"main": None}
    with pytest.raises(PlanError, match="no event-time column"):
        _ = joined.event_time
    joined.collect("out")
    joined.count("counted")
    # A join's output can be joined again (a chain of regular joins, as SQL writes them).
    extra = flow.from_table("extra", pa.table({"ts": [0], "d": ["b"], "note": ["bee"]}), event_time="ts")
    joined.key_by("d").join(extra.key_by("d"), right_prefix="extra_", name="again").collect("chained")
    # Stateless transformations keep the absence of event time.
    projected = joined.filter(col("temp") > 15.0).select("d", "x", warmer=col("temp") - 10.0)
    assert projected.node.event_time == {"main": None}
    projected.collect("projected")
    result = executor.run(flow)
    assert result.table("out").num_rows == 8
    assert sum(r["rows"] for r in result.outputs["counted"]) == 8
    chained = result.table("chained")
    assert chained.column_names == ["ts", "d", "x", "right_ts", "temp", "extra_ts", "note"]
    assert sorted(rows(chained, ["x", "temp", "note"])) == [(3, 20.0, "bee"), (3, 40.0, "bee")]
    assert sorted(rows(result.table("projected"))) == sorted(
        (d, x, temp - 10.0) for _, d, x, _, temp in brute_force(LEFT, RIGHT) if temp > 15.0
    )


def test_callback_sink_after_a_join():
    # Inline only: the callback appends to a list of this process, which a Ray worker cannot reach.
    flow = Dataflow("callback")
    seen = []
    build(flow, LEFT, RIGHT).sink(lambda batch: seen.append(batch.num_rows))
    InlineExecutor().run(flow)
    assert sum(seen) == 8


def test_ttl_drops_rows_older_than_the_watermark_minus_ttl():
    # Inline only: whether the right row at 9000 comes before or after the watermark that
    # expires the left row at 1000 depends on how the two sources interleave, which the inline
    # executor fixes (one batch per source per round) and Ray, where they run apart, does not.
    left = pa.table({"ts": [1000, 8000], "d": ["a", "a"], "x": [1, 2]})
    right = pa.table({"ts": [2000, 7000, 9000], "d": ["a", "a", "a"], "temp": [1.0, 2.0, 3.0]})
    everything = run(InlineExecutor(), left, right, batch_size=1)
    assert sorted(rows(everything, ["ts", "right_ts"])) == [
        (1000, 2000),
        (1000, 7000),
        (1000, 9000),
        (8000, 2000),
        (8000, 7000),
        (8000, 9000),
    ]
    # Round 2 brings the join's watermark to 7000: with a TTL of 5 s the left row at 1000
    # (older than 2000) goes, the right row at 2000 (not older) stays; then right 9000 comes.
    out = run(InlineExecutor(), left, right, batch_size=1, ttl=5000)
    assert sorted(rows(out, ["ts", "right_ts"])) == [(1000, 2000), (1000, 7000), (8000, 2000), (8000, 7000), (8000, 9000)]


# ---- build-time errors ------------------------------------------------------------------------


def streams(left_schema=None, right_schema=None):
    flow = Dataflow("errors")
    left = flow.from_table("left", left_schema or LEFT, event_time="ts")
    right = flow.from_table("right", right_schema or RIGHT, event_time="ts")
    return left, right


def test_key_types_must_match():
    left, right = streams(right_schema=pa.table({"ts": [1], "d": [1], "temp": [1.0]}))
    with pytest.raises(PlanError, match="key types differ") as error:
        left.key_by("d").join(right.key_by("d"), name="j")
    assert error.value.operator == "j"


def test_both_sides_must_be_keyed():
    left, right = streams()
    with pytest.raises(PlanError, match="key_by on both"):
        left.key_by("d").join(right)
    with pytest.raises(PlanError, match="key_by on both"):
        left.join(right.key_by("d"))


def test_condition_is_checked_against_the_joined_schema():
    left, right = streams()
    with pytest.raises(PlanError, match="not a boolean") as error:
        left.key_by("d").join(right.key_by("d"), condition=col("temp") + 1, name="j")
    assert error.value.operator == "j"
    with pytest.raises(PlanError, match="unknown column") as error:
        left.key_by("d").join(right.key_by("d"), condition=col("nope") > 1, name="j2")
    assert error.value.column == "nope"
    # The right's renamed columns are what the condition sees.
    left.key_by("d").join(right.key_by("d"), condition=col("right_ts") > col("ts"), name="j3")


def test_ttl_option():
    left, right = streams()
    with pytest.raises(OptionError, match="ttl"):
        left.key_by("d").join(right.key_by("d"), ttl=-5)
    with pytest.raises(OptionError, match="ttl"):
        left.key_by("d").join(right.key_by("d"), ttl=0)
    # A TTL needs event time on both sides; a join's output has none.
    joined = left.key_by("d").join(right.key_by("d"), name="first")
    with pytest.raises(PlanError, match="has none") as error:
        joined.key_by("d").join(right.key_by("d"), ttl=1000, right_prefix="again_", name="second")
    assert error.value.operator == "second"


def test_only_inner_is_supported_by_the_operator():
    with pytest.raises(OptionError, match="'inner'"):
        RegularJoin(["d"], ["d"], [], LEFT.schema, RIGHT.schema, LEFT.schema, how="left")


# ---- the operator driven directly -------------------------------------------------------------

LEFT_SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("d", pa.string()), ("x", pa.int64())])
RIGHT_SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("d", pa.string()), ("temp", pa.float64())])


def operator(**options):
    flow = Dataflow("direct")
    left = flow.source("left", GeneratorSource(LEFT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    right = flow.source("right", GeneratorSource(RIGHT_SCHEMA, lambda p, n: iter(())), event_time="ts")
    return left.key_by("d").join(right.key_by("d"), **options).node.factory()


def batch(schema, ts, d, value):
    return pa.record_batch(
        [pa.array(ts, pa.int64()).cast(EVENT_TIME_TYPE), pa.array(d), pa.array(value, schema.field(2).type)], schema=schema
    )


class Outputs:
    def __init__(self):
        self.main = []
        self.collector = Collector({"main": self.main.append})

    def take(self, columns):
        emitted = rows(pa.Table.from_batches(self.main), columns) if self.main else []
        self.main.clear()
        return sorted(emitted)


def test_a_pair_is_emitted_when_its_second_row_arrives():
    join, out = operator(), Outputs()
    join.process_batch(batch(LEFT_SCHEMA, [1000, 1000], ["a", "b"], [1, 2]), 0, out.collector)
    assert out.take(["x"]) == []
    join.process_batch(batch(RIGHT_SCHEMA, [5000, 6000], ["a", "a"], [1.0, 2.0]), 1, out.collector)
    assert out.take(["x", "temp"]) == [(1, 1.0), (1, 2.0)]
    # A newer left row meets both buffered right rows; the old pairs are not emitted again.
    join.process_batch(batch(LEFT_SCHEMA, [9000], ["a"], [3]), 0, out.collector)
    assert out.take(["x", "temp"]) == [(3, 1.0), (3, 2.0)]
    assert join.on_watermark(9000, out.collector) == 9000


def test_many_small_batches_merge_into_few_runs_and_join_once_each():
    join, out = operator(), Outputs()
    for i in range(500):
        join.process_batch(batch(RIGHT_SCHEMA, [i], ["a" if i % 2 else "b"], [float(i)]), 1, out.collector)
        side = join.buffers[1]
        # Runs of similar size merge (a log-structured merge): about log2(rows) of them.
        assert len(side.runs) <= (i + 1).bit_length()
    assert side.num_rows == 500
    join.process_batch(batch(LEFT_SCHEMA, [0, 0], ["a", "z"], [1, 2]), 0, out.collector)
    assert out.take(["x", "temp"]) == [(1, float(i)) for i in range(1, 500, 2)]


def test_ttl_expires_buffered_rows_on_watermarks():
    join, out = operator(ttl=1000), Outputs()
    # Out of order, over several runs of the side's index (merged as they come).
    for ts in (5000, 1000, 3000, 2000, 4000, 6000, 1500):
        join.process_batch(batch(RIGHT_SCHEMA, [ts], ["a"], [float(ts)]), 1, out.collector)
    join.on_watermark(3500, out.collector)  # keeps ts >= 2500
    assert sorted(rows(join.buffers[1].table(), ["ts"])) == [(3000,), (4000,), (5000,), (6000,)]
    join.process_batch(batch(LEFT_SCHEMA, [3600], ["a"], [1]), 0, out.collector)
    assert out.take(["right_ts"]) == [(3000,), (4000,), (5000,), (6000,)]
    join.on_watermark(5200, out.collector)  # keeps ts >= 4200: the left row goes too
    assert sorted(rows(join.buffers[1].table(), ["ts"])) == [(5000,), (6000,)]
    assert join.buffers[0].num_rows == 0
    join.on_watermark(10_000, out.collector)
    assert join.buffers[1].num_rows == 0


def test_without_ttl_nothing_is_ever_dropped():
    join, out = operator(), Outputs()
    join.process_batch(batch(RIGHT_SCHEMA, [1000], ["a"], [1.0]), 1, out.collector)
    join.on_watermark(10**12, out.collector)
    assert join.buffers[1].num_rows == 1


def test_snapshot_and_restore():
    join, out = operator(ttl=10_000), Outputs()
    join.process_batch(batch(LEFT_SCHEMA, [1000, 2000], ["a", "b"], [1, 2]), 0, out.collector)
    join.process_batch(batch(RIGHT_SCHEMA, [1500], ["b"], [5.0]), 1, out.collector)
    join.on_watermark(2000, out.collector)
    out.take(["x"])
    state = join.snapshot()
    assert state["watermark"] == 2000
    assert sorted(rows(state["left"], ["x"])) == [(1,), (2,)]
    assert rows(state["right"], ["temp"]) == [(5.0,)]
    restored = operator(ttl=10_000)
    restored.restore(state)
    restored.process_batch(batch(RIGHT_SCHEMA, [3000], ["a"], [7.0]), 1, out.collector)
    restored.process_batch(batch(LEFT_SCHEMA, [3000], ["b"], [3]), 0, out.collector)
    assert out.take(["x", "temp"]) == [(1, 7.0), (3, 5.0)]
    restored.on_watermark(12_000, out.collector)  # the TTL survived the restore: ts < 2000 go
    assert sorted(rows(restored.buffers[0].table(), ["x"])) == [(2,), (3,)]
