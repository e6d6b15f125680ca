"""Session windows: per key, rows less than ``gap`` apart form one window [first, last + gap)."""

import pyarrow as pa

from engine import Collector, Dataflow
from engine.timeutil import EVENT_TIME_TYPE
from operators import Session, agg
from operators.window import build_window

SCHEMA = pa.schema([("ts", EVENT_TIME_TYPE), ("k", pa.string()), ("v", pa.int64())])


def rows(table, columns):
    table = table.select(columns)
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def run(executor, table, build, batch_size=10_000, out_of_orderness=0):
    flow = Dataflow("session")
    windowed = build(flow.from_table("src", table, event_time="ts", batch_size=batch_size, out_of_orderness=out_of_orderness))
    windowed.collect("out")
    windowed.late().collect("late")
    result = executor.run(flow)
    return result.table("out"), result.table("late")


def batch(ts, k, v):
    return pa.record_batch(
        [pa.array(ts, pa.int64()).cast(EVENT_TIME_TYPE), pa.array(k, pa.string()), pa.array(v, pa.int64())], schema=SCHEMA
    )


def test_keyed_sessions(executor):
    table = pa.table(
        {
            "ts": [0, 300, 1000, 1250, 2500, 2600, 3400],
            "k": ["a", "a", "b", "a", "a", "b", "b"],
            "v": [1, 2, 3, 4, 5, 6, 7],
        }
    )
    out, late = run(executor, table, lambda s: s.key_by("k").window(Session(gap=1000), [agg("sum", "v"), agg("count")]))
    assert out.column_names == ["k", "window_start", "window_end", "window_time", "v_sum", "count", "is_update"]
    assert sorted(rows(out, ["k", "window_start", "window_end", "window_time", "v_sum", "count", "is_update"])) == [
        ("a", 0, 2250, 2249, 7, 3, False),  # 0, 300, 1250: each less than 1000 after the previous
        ("a", 2500, 3500, 3499, 5, 1, False),  # 1250 ms after 1250: a new session
        ("b", 1000, 2000, 1999, 3, 1, False),
        ("b", 2600, 4400, 4399, 13, 2, False),
    ]
    assert late.num_rows == 0


def test_rows_exactly_gap_apart_are_two_sessions(executor):
    table = pa.table({"ts": [0, 1000, 1999], "k": ["a"] * 3, "v": [1, 2, 3]})
    out, _ = run(executor, table, lambda s: s.window(Session(gap=1000), [agg("sum", "v")]))
    assert rows(out, ["window_start", "window_end", "v_sum"]) == [(0, 1000, 1), (1000, 2999, 5)]


def test_global_sessions(executor):
    table = pa.table({"ts": [0, 500, 900, 3000, 3100], "k": ["a", "b", "c", "a", "b"], "v": [1, 2, 3, 4, 5]})
    out, _ = run(executor, table, lambda s: s.window(Session(gap=600), [agg("count"), agg("count_distinct", "k"), agg("max", "v")]))
    assert rows(out, ["window_start", "window_end", "count", "k_count_distinct", "v_max", "is_update"]) == [
        (0, 1500, 3, 3, 3, False),
        (3000, 3700, 2, 2, 5, False),
    ]


def test_null_keys_form_a_session_of_their_own(executor):
    table = pa.table({"ts": [0, 100, 200], "k": [None, "a", None], "v": [1, 2, 4]})
    out, _ = run(executor, table, lambda s: s.key_by("k").window(Session(gap=1000), [agg("sum", "v")]))
    assert sorted(rows(out, ["k", "window_start", "v_sum"]), key=str) == [("a", 100, 2), (None, 0, 5)]


def test_a_row_that_bridges_two_sessions_merges_them(executor):
    # With 1000 ms of out-of-orderness, 800 comes in time to join [0, 1000) and [1500, 2500).
    table = pa.table({"ts": [0, 1500, 800, 5000], "k": ["a"] * 4, "v": [1, 2, 4, 8]})
    out, late = run(executor,
        table,
        lambda s: s.window(Session(gap=1000), [agg("sum", "v"), agg("first", "v"), agg("last", "v")]),
        batch_size=1,
        out_of_orderness=1000,
    )
    assert rows(out, ["window_start", "window_end", "v_sum", "v_first", "v_last"]) == [
        (0, 2500, 7, 1, 2),
        (5000, 6000, 8, 8, 8),
    ]
    assert late.num_rows == 0


def test_sessions_fire_only_when_the_watermark_passes_their_end():
    factory, _ = build_window("w", Session(gap=1000), ["k"], [agg("sum", "v")], SCHEMA, "ts")
    window = factory()
    emitted, late = [], []
    out = Collector({"main": emitted.append, "late": late.append})

    def take():
        result = sorted(rows(pa.Table.from_batches(emitted), ["k", "window_start", "window_end", "v_sum"])) if emitted else []
        emitted.clear()
        return result

    window.process_batch(batch([0, 300, 1000], ["a", "a", "b"], [1, 2, 3]), 0, out)
    assert window.on_watermark(1298, out) == 1298
    assert take() == []
    window.on_watermark(1299, out)  # a's session [0, 1300) is complete
    assert take() == [("a", 0, 1300, 3)]
    # A row extends b's open session; a row of a after its session's end is late.
    window.process_batch(batch([1900, 200], ["b", "a"], [4, 8]), 0, out)
    assert take() == []
    assert rows(pa.Table.from_batches(late), ["ts", "k"]) == [(200, "a")]
    window.on_watermark(2800, out)
    assert take() == []  # b's session is now [1000, 2900)
    window.on_watermark(2899, out)
    assert take() == [("b", 1000, 2900, 7)]
    assert window.buffer == []  # nothing kept once emitted (no allowed lateness)


def test_late_rows_go_to_the_late_output(executor):
    table = pa.table({"ts": [0, 300, 2500, 100, 1600, 5000], "k": ["a"] * 6, "v": [1, 2, 4, 8, 16, 32]})
    out, late = run(executor, table, lambda s: s.key_by("k").window(Session(gap=1000), [agg("sum", "v")]), batch_size=1)
    # Watermark 2499: [0, 1300) is closed, so 100 is late; 1600's session [1600, 2600) is not
    # past the watermark yet and merges with 2500.
    assert rows(out, ["window_start", "window_end", "v_sum", "is_update"]) == [
        (0, 1300, 3, False),
        (1600, 3500, 20, False),
        (5000, 6000, 32, False),
    ]
    assert rows(late, ["ts", "v"]) == [(100, 8)]


def test_allowed_lateness_emits_an_update(executor):
    table = pa.table({"ts": [0, 300, 2000, 500, 4000, 100], "k": ["a"] * 6, "v": [1, 2, 4, 8, 16, 32]})
    out, late = run(executor,
        table,
        lambda s: s.key_by("k").window(Session(gap=1000, allowed_lateness=1000), [agg("sum", "v"), agg("count")]),
        batch_size=1,
    )
    assert rows(out, ["window_start", "window_end", "v_sum", "count", "is_update"]) == [
        (0, 1300, 3, 2, False),  # fired by the watermark 1999
        # 500 came at watermark 1999, within the lateness (until 2299): fired again by 3999,
        # extended to [0, 1500), as an update.
        (2000, 3000, 4, 1, False),
        (0, 1500, 11, 3, True),
        (4000, 5000, 16, 1, False),
    ]
    # 100 came at watermark 3999: past [0, 1500) + lateness.
    assert rows(late, ["ts", "v"]) == [(100, 32)]


def test_batching_does_not_change_results(executor):
    table = pa.table(
        {
            "ts": [0, 150, 400, 1200, 1250, 1900, 3000, 3050],
            "k": ["a", "b", "a", "b", "a", "a", "b", "b"],
            "v": [1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    expected = None
    for batch_size in (1, 3, 100):
        out, late = run(executor, table, lambda s: s.key_by("k").window(Session(gap=700), [agg("sum", "v")]), batch_size=batch_size)
        result = sorted(rows(out, ["k", "window_start", "window_end", "v_sum"]))
        assert late.num_rows == 0
        expected = expected or result
        assert result == expected
    assert expected == [("a", 0, 1100, 4), ("a", 1250, 2600, 11), ("b", 150, 850, 2), ("b", 1200, 1900, 4), ("b", 3000, 3750, 15)]
