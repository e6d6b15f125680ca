"""Hopping windows: every row in each window [k * slide, k * slide + size) that covers it."""

import pyarrow as pa
import pytest

from engine import Collector, Dataflow
from engine.timeutil import EVENT_TIME_TYPE
from operators import Hopping, Tumbling, agg
from operators.window import build_window

SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("k", pa.string()), ("v", pa.int64())])


def rows(table, columns):
    table = table.select(columns)
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def run(executor, table, build, batch_size=10_000):
    flow = Dataflow("hopping")
    windowed = build(flow.from_table("src", table, event_time="ts", batch_size=batch_size))
    windowed.collect("out")
    windowed.late().collect("late")
    result = executor.run(flow)
    return result.table("out"), result.table("late")


def batch(ts, k, v):
    return pa.record_batch(
        [pa.array(ts, pa.int64()).cast(EVENT_TIME_TYPE), pa.array(k, pa.string()), pa.array(v, pa.int64())], schema=SCHEMA
    )


def test_global_hopping_size_twice_the_slide(executor):
    table = pa.table({"ts": [0, 1500, 2200], "k": ["a"] * 3, "v": [1, 2, 4]})
    out, _ = run(executor, table, lambda s: s.window(Hopping(size=2000, slide=1000), [agg("sum", "v"), agg("count")]))
    assert rows(out, ["window_start", "window_end", "window_time", "v_sum", "count", "is_update"]) == [
        (-1000, 1000, 999, 1, 1, False),
        (0, 2000, 1999, 3, 2, False),
        (1000, 3000, 2999, 6, 2, False),
        (2000, 4000, 3999, 4, 1, False),
    ]


def test_keyed_hopping(executor):
    table = pa.table({"ts": [0, 500, 1200, 1300, 2100], "k": ["a", "b", "a", "b", "a"], "v": [1, 10, 2, 20, 3]})
    out, _ = run(executor, table, lambda s: s.key_by("k").window(Hopping(size=2000, slide=1000), [agg("sum", "v")]))
    assert sorted(rows(out, ["k", "window_start", "v_sum"])) == [
        ("a", -1000, 1),
        ("a", 0, 3),
        ("a", 1000, 5),
        ("a", 2000, 3),
        ("b", -1000, 10),
        ("b", 0, 30),
        ("b", 1000, 20),
    ]


def test_size_not_a_multiple_of_slide(executor):
    # Windows [0, 1500), [1000, 2500), [2000, 3500)...; bins of gcd(1500, 1000) = 500 ms.
    table = pa.table({"ts": [100, 1200, 1600, 2400], "k": ["a"] * 4, "v": [1, 2, 4, 8]})
    out, _ = run(executor, table, lambda s: s.window(Hopping(size=1500, slide=1000), [agg("sum", "v")]))
    assert rows(out, ["window_start", "window_end", "v_sum"]) == [
        (-1000, 500, 1),
        (0, 1500, 3),
        (1000, 2500, 14),
        (2000, 3500, 8),
    ]


def test_slide_equal_to_size_is_tumbling(executor):
    table = pa.table({"ts": [0, 700, 1200, 2900, 3100], "k": ["a", "b", "a", "a", "b"], "v": [1, 2, 3, 4, 5]})
    hopping, _ = run(executor, table, lambda s: s.key_by("k").window(Hopping(1000, 1000), [agg("sum", "v")]))
    tumbling, _ = run(executor, table, lambda s: s.key_by("k").window(Tumbling(1000), [agg("sum", "v")]))
    columns = ["k", "window_start", "window_end", "v_sum"]
    assert sorted(rows(hopping, columns)) == sorted(rows(tumbling, columns))


def test_gaps_between_rows_give_no_empty_windows(executor):
    table = pa.table({"ts": [0, 10_000], "k": ["a", "a"], "v": [1, 2]})
    out, _ = run(executor, table, lambda s: s.window(Hopping(size=2000, slide=1000), [agg("count")]))
    assert rows(out, ["window_start", "count"]) == [(-1000, 1), (0, 1), (9000, 1), (10_000, 1)]


def test_hopping_windows_fire_one_by_one_as_the_watermark_passes():
    factory, _ = build_window("w", Hopping(size=2000, slide=1000), [], [agg("sum", "v")], SCHEMA, "ts")
    window = factory()
    emitted, late = [], []
    out = Collector({"main": emitted.append, "late": late.append})

    def take():
        result = rows(pa.Table.from_batches(emitted), ["window_start", "v_sum"]) if emitted else []
        emitted.clear()
        return result

    window.process_batch(batch([100, 1100], ["a", "a"], [1, 2]), 0, out)
    window.on_watermark(998, out)
    assert take() == []
    window.on_watermark(999, out)
    assert take() == [(-1000, 1)]
    window.on_watermark(1998, out)
    assert take() == []
    window.on_watermark(1999, out)
    assert take() == [(0, 3)]
    # [1000, 3000) is still open: a row at 1500 is on time, a row at 500 is late.
    window.process_batch(batch([1500, 500], ["a", "a"], [4, 8]), 0, out)
    assert take() == []
    assert rows(pa.Table.from_batches(late), ["ts", "v"]) == [(500, 8)]
    window.on_watermark(2999, out)
    assert take() == [(1000, 6)]
    assert window.bins == {}


def test_late_rows_and_allowed_lateness(executor):
    table = pa.table(
        {
            "ts": [0, 2201, 1800, 2500, 1500, 400, 5000, 1600],
            "k": ["a"] * 8,
            "v": [1, 2, 4, 8, 16, 32, 64, 128],
        }
    )
    out, late = run(executor,
        table, lambda s: s.window(Hopping(size=2000, slide=1000, allowed_lateness=500), [agg("sum", "v")]), batch_size=1
    )
    assert rows(out, ["window_start", "v_sum", "is_update"]) == [
        (-1000, 1, False),
        (0, 1, False),  # fired by the watermark 2200
        (0, 5, True),  # 1800 came within [0, 2000)'s lateness (until 2499): the corrected sum
        # 1500 came at watermark 2499: [0, 2000) is final (no update), [1000, 3000) still open.
        (1000, 30, False),  # fired by the watermark 4999: 1800, 1500, 2201, 2500
        (2000, 10, False),
        (4000, 64, False),
        (5000, 64, False),
    ]
    # 400: its last window, [0, 2000), is past end + lateness; 1600 comes at watermark 4999.
    assert rows(late, ["ts", "v"]) == [(400, 32), (1600, 128)]


def test_no_update_for_a_hopping_window_past_its_end(executor):
    # Lateness 0: a row for an open window that also falls in a fired one only counts in the open one.
    table = pa.table({"ts": [100, 2000, 1500, 4000], "k": ["a"] * 4, "v": [1, 2, 4, 8]})
    out, late = run(executor, table, lambda s: s.window(Hopping(size=2000, slide=1000), [agg("sum", "v")]), batch_size=1)
    assert rows(out, ["window_start", "v_sum", "is_update"]) == [
        (-1000, 1, False),
        (0, 1, False),
        (1000, 6, False),
        (2000, 2, False),
        (3000, 8, False),
        (4000, 8, False),
    ]
    assert late.num_rows == 0


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_batching_does_not_change_results(executor, batch_size):
    table = pa.table({"ts": [0, 300, 900, 1200, 1700, 2600], "k": ["a", "b", "a", "b", "a", "b"], "v": [1, 2, 3, 4, 5, 6]})
    out, _ = run(executor,
        table, lambda s: s.key_by("k").window(Hopping(1500, 500), [agg("sum", "v"), agg("min", "v")]), batch_size=batch_size
    )
    expected, _ = run(executor, table, lambda s: s.key_by("k").window(Hopping(1500, 500), [agg("sum", "v"), agg("min", "v")]))
    columns = ["k", "window_start", "v_sum", "v_min"]
    assert sorted(rows(out, columns)) == sorted(rows(expected, columns))
    # Each row is in size / slide = 3 windows.
    assert sum(out["v_sum"].to_pylist()) == 3 * 21
