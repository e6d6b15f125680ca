"""Tumbling windows: exact results, window columns, firing on the watermark, late rows, updates."""

from datetime import timedelta

import pyarrow as pa
import pytest

from engine import Collector, Dataflow, GeneratorSource, InlineExecutor
from engine.timeutil import EVENT_TIME_TYPE
from operators import Tumbling, agg
from operators.window import build_window

SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("k", pa.string()), ("v", pa.int64())])
RAW = pa.schema([("ts", pa.int64()), ("k", pa.string()), ("v", pa.int64())])  # as a source gives it


def rows(table, columns):
    """The rows of ``table`` as tuples of ``columns``, timestamps as epoch ms."""
    table = table.select(columns)
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def run(executor, table, build, batch_size=10_000, out_of_orderness=0):
    flow = Dataflow("tumbling")
    windowed = build(flow.from_table("src", table, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness))
    windowed.collect("out")
    windowed.late().collect("late")
    result = executor.run(flow)
    return result.table("out"), result.table("late")


def batch(ts, k, v):
    return pa.record_batch(
        [pa.array(ts, pa.int64()).cast(EVENT_TIME_TYPE), pa.array(k, pa.string()), pa.array(v, pa.int64())], schema=SCHEMA
    )


class Outputs:
    """A Collector for driving an operator directly, keeping what it emits."""

    def __init__(self):
        self.main, self.late = [], []
        self.collector = Collector({"main": self.main.append, "late": self.late.append})

    def take(self, columns):
        emitted = pa.Table.from_batches(self.main) if self.main else None
        self.main.clear()
        return [] if emitted is None else rows(emitted, columns)


def operator(spec, keys, aggregates):
    factory, _ = build_window("w", spec, keys, aggregates, SCHEMA, "ts")
    return factory()


TABLE = pa.table(
    {
        "ts": [0, 200, 999, 1000, 1500, 2999, 3000],
        "k": ["a", "b", "a", "a", "b", "b", "a"],
        "v": [1, 2, 3, 4, 5, 6, 7],
    }
)


def test_keyed_tumbling(executor):
    out, late = run(executor, TABLE, lambda s: s.key_by("k").window(Tumbling(1000), [agg("sum", "v"), agg("count")]))
    assert out.column_names == ["k", "window_start", "window_end", "window_time", "v_sum", "count", "is_update"]
    assert sorted(rows(out, ["window_start", "k", "v_sum", "count"])) == [
        (0, "a", 4, 2),
        (0, "b", 2, 1),
        (1000, "a", 4, 1),
        (1000, "b", 5, 1),
        (2000, "b", 6, 1),
        (3000, "a", 7, 1),
    ]
    assert out["is_update"].to_pylist() == [False] * 6
    assert late.num_rows == 0


def test_window_columns(executor):
    out, _ = run(executor, TABLE, lambda s: s.window(Tumbling(timedelta(seconds=1)), [agg("count")]))
    assert out.schema.field("window_start").type == EVENT_TIME_TYPE
    assert out.schema.field("window_end").type == EVENT_TIME_TYPE
    assert out.schema.field("window_time").type == EVENT_TIME_TYPE
    # window_time is the last millisecond of the window: the event time of the result.
    assert rows(out, ["window_start", "window_end", "window_time", "count"]) == [
        (0, 1000, 999, 3),
        (1000, 2000, 1999, 2),
        (2000, 3000, 2999, 1),
        (3000, 4000, 3999, 1),
    ]


def test_global_tumbling_with_every_aggregate(executor):
    table = pa.table(
        {
            "ts": [2000, 100, 900, 500, 1200],
            "k": ["x", "y", "x", None, "y"],
            "v": [10, 1, 3, 2, None],
        }
    )
    aggregates = [
        agg("sum", "v"),
        agg("count"),
        agg("count", "v", name="v_count"),
        agg("min", "v"),
        agg("max", "v"),
        agg("mean", "v"),
        agg("first", "k"),
        agg("last", "k"),
        agg("count_distinct", "k"),
    ]
    out, _ = run(executor, table, lambda s: s.window(Tumbling(1000), aggregates), batch_size=2, out_of_orderness=5000)
    names = ["window_start", "v_sum", "count", "v_count", "v_min", "v_max", "v_mean", "k_first", "k_last", "k_count_distinct"]
    assert rows(out, names) == [
        # first/last by event time: 100 (y) and 900 (x); count_distinct skips the null, as in SQL.
        (0, 6, 3, 3, 1, 3, 2.0, "y", "x", 2),
        (1000, None, 1, 0, None, None, None, "y", "y", 1),
        (2000, 10, 1, 1, 10, 10, 10.0, "x", "x", 1),
    ]


def test_dict_form_of_aggregates(executor):
    out, _ = run(executor, TABLE, lambda s: s.window(Tumbling(2000), {"total": ("sum", "v"), "n": ("count", None)}))
    assert rows(out, ["window_start", "total", "n"]) == [(0, 15, 5), (2000, 13, 2)]


def test_windows_fire_only_when_the_watermark_passes_their_end():
    window = operator(Tumbling(1000), ["k"], [agg("sum", "v")])
    out = Outputs()
    window.process_batch(batch([0, 500, 1200], ["a", "a", "a"], [1, 2, 3]), 0, out.collector)
    assert out.take(["window_start", "v_sum"]) == []
    assert window.on_watermark(998, out.collector) == 998
    assert out.take(["window_start", "v_sum"]) == []  # [0, 1000) may still get a row at 999
    window.on_watermark(999, out.collector)
    assert out.take(["window_start", "window_end", "v_sum", "is_update"]) == [(0, 1000, 3, False)]
    window.on_watermark(1500, out.collector)
    assert out.take(["window_start", "v_sum"]) == []
    window.process_batch(batch([1999], ["a"], [4]), 0, out.collector)
    window.on_watermark(1999, out.collector)
    assert out.take(["window_start", "v_sum"]) == [(1000, 7)]
    assert out.late == []
    assert window.bins == {}  # fired windows leave no state


def test_a_jump_of_the_watermark_fires_every_window_it_passes():
    window = operator(Tumbling(1000), [], [agg("count")])
    out = Outputs()
    window.process_batch(batch([100, 1100, 2100, 5100], ["a"] * 4, [1] * 4), 0, out.collector)
    window.on_watermark(3000, out.collector)
    assert out.take(["window_start", "count"]) == [(0, 1), (1000, 1), (2000, 1)]
    window.on_watermark(2**63 - 1, out.collector)  # end of input
    assert out.take(["window_start", "count"]) == [(5000, 1)]


def test_windows_fire_before_the_input_ends():
    """A generator source that waits for a window result before it sends its last batch."""
    results = []

    def make(partition, partitions):
        yield pa.record_batch({"ts": [0, 400], "k": ["a", "a"], "v": [1, 2]}, schema=RAW)
        yield pa.record_batch({"ts": [1000], "k": ["a"], "v": [5]}, schema=RAW)  # watermark 999: [0, 1000) fires
        for _ in range(100):
            if results:
                break
            yield None
        yield pa.record_batch({"ts": [1100], "k": ["a"], "v": [len(results)]}, schema=RAW)

    flow = Dataflow("early")
    windowed = flow.source("src", GeneratorSource(RAW, make), event_time="ts").window(Tumbling(1000), [agg("sum", "v")])
    windowed.sink(results.append)
    windowed.collect("out")
    out = InlineExecutor(idle_sleep=0).run(flow).table("out")
    # The last row carries how many results were out before it: one, the first window.
    assert rows(out, ["window_start", "v_sum"]) == [(0, 3), (1000, 6)]


def test_late_rows_go_to_the_late_output(executor):
    table = pa.table({"ts": [0, 1500, 200, 999, 1000, 2500], "k": ["a"] * 6, "v": [1, 2, 3, 4, 5, 6]})
    out, late = run(executor, table, lambda s: s.key_by("k").window(Tumbling(1000), [agg("sum", "v")]), batch_size=1)
    # 200 and 999 come after the watermark 1499 closed [0, 1000); 1000 is still on time.
    assert rows(out, ["window_start", "v_sum", "is_update"]) == [(0, 1, False), (1000, 7, False), (2000, 6, False)]
    assert late.column_names == ["ts", "k", "v"]
    assert rows(late, ["ts", "v"]) == [(200, 3), (999, 4)]


def test_out_of_orderness_keeps_rows_on_time(executor):
    table = pa.table({"ts": [0, 1500, 200, 2500], "k": ["a"] * 4, "v": [1, 2, 3, 4]})
    out, late = run(executor, table, lambda s: s.window(Tumbling(1000), [agg("sum", "v")]), batch_size=1, out_of_orderness=600)
    assert rows(out, ["window_start", "v_sum"]) == [(0, 4), (1000, 2), (2000, 4)]
    assert late.num_rows == 0


def test_allowed_lateness_emits_an_update(executor):
    table = pa.table(
        {"ts": [0, 100, 1500, 200, 2100, 300, 3200], "k": ["a", "b", "a", "a", "a", "a", "a"], "v": [1, 10, 2, 3, 4, 5, 6]}
    )
    out, late = run(executor,
        table,
        lambda s: s.key_by("k").window(Tumbling(1000, allowed_lateness=1000), [agg("sum", "v"), agg("count")]),
        batch_size=1,
    )
    assert rows(out, ["k", "window_start", "v_sum", "count", "is_update"]) == [
        ("a", 0, 1, 1, False),
        ("b", 0, 10, 1, False),
        # 200 came after [0, 1000) fired (watermark 1499) but within its lateness: the
        # corrected result, for key a only.
        ("a", 0, 4, 2, True),
        ("a", 1000, 2, 1, False),
        ("a", 2000, 4, 1, False),
        ("a", 3000, 6, 1, False),
    ]
    # 300 came at watermark 2099, past [0, 1000)'s end + lateness (1999): late.
    assert rows(late, ["ts", "v"]) == [(300, 5)]


def test_allowed_lateness_keeps_state_until_end_plus_lateness():
    window = operator(Tumbling(1000, allowed_lateness=500), [], [agg("sum", "v")])
    out = Outputs()
    window.process_batch(batch([100], ["a"], [1]), 0, out.collector)
    window.on_watermark(999, out.collector)
    assert out.take(["window_start", "v_sum", "is_update"]) == [(0, 1, False)]
    window.on_watermark(1400, out.collector)
    window.process_batch(batch([900], ["a"], [2]), 0, out.collector)
    assert out.take(["window_start", "v_sum", "is_update"]) == [(0, 3, True)]
    window.on_watermark(1499, out.collector)
    assert window.bins == {}
    window.process_batch(batch([950], ["a"], [4]), 0, out.collector)
    assert out.take(["window_start", "v_sum"]) == []
    assert rows(pa.Table.from_batches(out.late), ["ts", "v"]) == [(950, 4)]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 100])
def test_batching_does_not_change_results(executor, batch_size):
    out, _ = run(executor, TABLE, lambda s: s.key_by("k").window(Tumbling(1000), [agg("sum", "v"), agg("max", "v")]), batch_size=batch_size)
    assert sorted(rows(out, ["window_start", "k", "v_sum", "v_max"])) == [
        (0, "a", 4, 3),
        (0, "b", 2, 2),
        (1000, "a", 4, 4),
        (1000, "b", 5, 5),
        (2000, "b", 6, 6),
        (3000, "a", 7, 7),
    ]


def test_many_batches_in_one_bin_are_compacted(executor):
    table = pa.table({"ts": list(range(0, 1000, 50)), "k": ["a"] * 20, "v": list(range(20))})
    out, _ = run(executor,
        table, lambda s: s.window(Tumbling(1000), [agg("sum", "v"), agg("count"), agg("count_distinct", "v")]), batch_size=1
    )
    assert rows(out, ["window_start", "v_sum", "count", "v_count_distinct"]) == [(0, 190, 20, 20)]


def test_windows_firing_together_give_the_rows_of_each_window_fired_alone():
    # One watermark fires many windows at once (one finalize grouped by window and key);
    # the same rows, in the same order, as one watermark per window end.
    import numpy as np

    from engine.operator import MAIN

    rng = np.random.default_rng(3)
    n = 3_000
    schema = pa.schema([("ts", EVENT_TIME_TYPE), ("k", pa.string()), ("x", pa.float64()), ("label", pa.string())])
    table = pa.table(
        {
            "ts": pa.array(rng.integers(0, 60_000, n), pa.int64()).cast(EVENT_TIME_TYPE),
            "k": rng.choice(["a", "b", "c", None], n).tolist(),
            "x": rng.normal(size=n),
            "label": rng.choice(["fire", "smoke", None], n).tolist(),
        },
        schema=schema,
    )
    aggregates = [
        agg("count"),
        agg("sum", "x"),
        agg("mean", "x"),
        agg("count_distinct", "label"),
        agg("first", "x"),
        agg("last", "label"),
        agg("max", "ts", name="latest"),
    ]

    def fire(watermarks, batches):
        factory, _ = build_window("w", Tumbling(timedelta(seconds=5)), ["k"], aggregates, schema, "ts")
        window, emitted = factory(), []
        out = Collector({MAIN: emitted.append, "late": lambda b: None})
        for batch in batches:
            window.process_batch(batch, 0, out)
        for watermark in watermarks:
            window.on_watermark(watermark, out)
        return pa.Table.from_batches(emitted).to_pylist()

    batches = table.to_batches(max_chunksize=700)  # several partials per window
    one_by_one = fire(range(4_999, 65_000, 5_000), batches)
    assert len(one_by_one) > 12
    assert fire([70_000], batches) == one_by_one
    # One batch: one partial per window, merged without a group-by.
    single = table.combine_chunks().to_batches()
    assert fire([70_000], single) == fire(range(4_999, 65_000, 5_000), single)
