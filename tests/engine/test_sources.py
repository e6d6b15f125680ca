"""Sources: event-time normalisation, dead letters, validation, generator sources, idleness."""

import datetime as dt
import itertools

import pyarrow as pa
import pytest

from engine import Dataflow, GeneratorSource, InlineExecutor, TableSource, col
from engine.sources import END_OF_INPUT
from engine.timeutil import EVENT_TIME_TYPE
from operators import Tumbling, agg

JAN_1 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms


def millis(table, column="ts"):
    return table.column(column).cast(pa.int64()).to_pylist()


def run_source(executor, table, **options):
    flow = Dataflow("sources")
    stream = flow.from_table("src", table, event_time="ts", **options)
    stream.collect("out")
    stream.dead_letter().collect("dead")
    result = executor.run(flow)
    return result.table("out"), result.table("dead"), result


# ---- event-time normalisation ----------------------------------------------------------------


def test_integer_event_times_are_epoch_millis(executor):
    out, dead, _ = run_source(executor, pa.table({"ts": pa.array([0, 1500, JAN_1], pa.int64()), "v": [1, 2, 3]}))
    assert out.schema.field("ts").type == EVENT_TIME_TYPE
    assert millis(out) == [0, 1500, JAN_1]
    assert dead.num_rows == 0


def test_int32_event_times(executor):
    out, _, _ = run_source(executor, pa.table({"ts": pa.array([5, 7], pa.int32()), "v": [1, 2]}))
    assert millis(out) == [5, 7]


def test_iso_strings_with_and_without_offset(executor):
    times = ["2024-01-01T00:00:00", "2024-01-01T01:00:00+01:00", "2024-01-01T00:00:01.250Z", "2024-01-01 00:00:02"]
    out, dead, _ = run_source(executor, pa.table({"ts": times, "v": [1, 2, 3, 4]}))
    assert out.schema.field("ts").type == EVENT_TIME_TYPE
    # Naive times are UTC; an offset is taken into account.
    assert millis(out) == [JAN_1, JAN_1, JAN_1 + 1250, JAN_1 + 2000]
    assert out["v"].to_pylist() == [1, 2, 3, 4]
    assert dead.num_rows == 0


def test_time_format(executor):
    out, dead, _ = run_source(executor,
        pa.table({"ts": ["01/01/2024 00:00:05", "31/12/2023 23:59:59"], "v": [1, 2]}), time_format="%d/%m/%Y %H:%M:%S"
    )
    assert millis(out) == [JAN_1 + 5000, JAN_1 - 1000]
    assert dead.num_rows == 0


def test_timestamps_of_other_units_and_zones_and_dates(executor):
    seconds = pa.array([1, 2], pa.timestamp("s"))  # naive: UTC
    out, _, _ = run_source(executor, pa.table({"ts": seconds, "v": [1, 2]}))
    assert millis(out) == [1000, 2000]
    zoned = pa.array(
        [dt.datetime(2024, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))], pa.timestamp("us", "Europe/Paris")
    )
    out, _, _ = run_source(executor, pa.table({"ts": zoned, "v": [1]}))
    assert millis(out) == [JAN_1]
    out, _, _ = run_source(executor, pa.table({"ts": pa.array([dt.date(2024, 1, 1)], pa.date32()), "v": [1]}))
    assert millis(out) == [JAN_1]


# ---- dead letters ----------------------------------------------------------------------------


def test_null_and_unparseable_event_times_go_to_the_dead_letter(executor):
    table = pa.table({"ts": ["2024-01-01T00:00:00", "garbage", None, "2024-01-01T00:00:03"], "v": [1, 2, 3, 4]})
    out, dead, result = run_source(executor, table)
    assert out["v"].to_pylist() == [1, 4]
    assert millis(out) == [JAN_1, JAN_1 + 3000]
    # The dead letter keeps the row as it came (the raw time string) and says why.
    assert dead.schema.names == ["ts", "v", "reason"]
    assert dead.schema.field("ts").type == pa.string()
    assert dead.to_pylist() == [
        {"ts": "garbage", "v": 2, "reason": "unparseable event time in column 'ts'"},
        {"ts": None, "v": 3, "reason": "null event time in column 'ts'"},
    ]
    assert result.unconsumed() == {}


def test_unparseable_with_time_format_goes_to_the_dead_letter(executor):
    table = pa.table({"ts": ["01/01/2024 00:00:05", "2024-01-01"], "v": [1, 2]})
    out, dead, _ = run_source(executor, table, time_format="%d/%m/%Y %H:%M:%S")
    assert out["v"].to_pylist() == [1]
    assert dead.to_pylist() == [{"ts": "2024-01-01", "v": 2, "reason": "unparseable event time in column 'ts'"}]


def test_null_integer_event_time_goes_to_the_dead_letter(executor):
    out, dead, _ = run_source(executor, pa.table({"ts": pa.array([1000, None], pa.int64()), "v": [1, 2]}))
    assert millis(out) == [1000]
    assert dead.to_pylist() == [{"ts": None, "v": 2, "reason": "null event time in column 'ts'"}]


def test_declared_validation_on_the_source(executor):
    table = pa.table(
        {
            "ts": ["2024-01-01T00:00:00", "2024-01-01T00:00:01", "bad", "2024-01-01T00:00:02", "2024-01-01T00:00:03"],
            "score": [0.5, 1.5, 2.0, None, 1.0],
        }
    )
    check = {"score in [0,1]": (col("score") >= 0) & (col("score") <= 1)}
    out, dead, _ = run_source(executor, table, validate=check)
    assert out["score"].to_pylist() == [0.5, 1.0]
    assert dead.to_pylist() == [
        {"ts": "2024-01-01T00:00:01", "score": 1.5, "reason": "score in [0,1]"},
        # A row refused for its time keeps that reason, even if it fails the check too.
        {"ts": "bad", "score": 2.0, "reason": "unparseable event time in column 'ts'"},
        # A null check result counts as failing.
        {"ts": "2024-01-01T00:00:02", "score": None, "reason": "score in [0,1]"},
    ]


def test_the_pipeline_continues_after_refused_rows(executor):
    table = pa.table(
        {
            "ts": [0, 100, None, 1200, 1300, 2500],
            "score": [0.1, 5.0, 0.3, 0.4, 0.5, 0.6],
        }
    )
    flow = Dataflow("continue")
    src = flow.from_table("src", table, event_time="ts", batch_size=2, validate={"ok": col("score") <= 1})
    src.window(Tumbling(1000), [agg("sum", "score"), agg("count")]).collect("out")
    result = executor.run(flow)
    out = result.table("out")
    assert millis(out, "window_start") == [0, 1000, 2000]
    assert out["count"].to_pylist() == [1, 2, 1]
    assert out["score_sum"].to_pylist() == pytest.approx([0.1, 0.9, 0.6])
    # Nothing reads the dead letter: its rows are counted.
    assert result.unconsumed() == {"src.dead_letter": 2}


# ---- table and generator sources -------------------------------------------------------------


def test_table_source_partitions_read_every_other_batch():
    source = TableSource(pa.table({"ts": [1, 2, 3, 4, 5]}), batch_size=2)
    source.open(1, 2)
    assert source.poll().column(0).to_pylist() == [3, 4]
    assert source.poll() is END_OF_INPUT


def test_table_source_in_parallel_reads_everything_once(executor):
    flow = Dataflow("parallel", parallelism=3)
    flow.from_table("src", pa.table({"ts": list(range(10))}), event_time="ts", batch_size=2).collect("out")
    result = executor.run(flow)
    assert sorted(millis(result.table("out"))) == list(range(10))


def test_generator_source_idle_then_batches():
    schema = pa.schema([("ts", pa.int64()), ("v", pa.int64())])
    polls = []

    def make(partition, partitions):
        for step in range(6):
            polls.append(step)
            if step % 2 == 0:
                yield None  # nothing ready now
            else:
                yield pa.record_batch({"ts": [step * 1000], "v": [step]}, schema=schema)

    flow = Dataflow("gen")
    src = flow.source("src", GeneratorSource(schema, make), event_time="ts")
    src.collect("raw")
    src.window(Tumbling(1000), [agg("sum", "v")]).collect("out")
    result = InlineExecutor(idle_sleep=0).run(flow)
    assert millis(result.table("raw")) == [1000, 3000, 5000]
    out = result.table("out")
    assert millis(out, "window_start") == [1000, 3000, 5000]
    assert out["v_sum"].to_pylist() == [1, 3, 5]
    assert polls == list(range(6))


# ---- idleness ---------------------------------------------------------------------------------


def fake_clock(step=0.05):
    ticks = itertools.count()
    return lambda: next(ticks) * step


def idle_flow(idle_timeout):
    """Source 'busy' sends a batch per poll; source 'quiet' sends one row, then nothing until
    window results have come out (or it gives up after 300 polls), then ends."""
    schema = pa.schema([("ts", pa.int64()), ("v", pa.int64())])
    state = {"results_seen": 0, "results_when_quiet_ended": None, "quiet_ended": False}

    def busy(partition, partitions):
        for second in range(10):
            yield pa.record_batch({"ts": [second * 1000, second * 1000 + 500], "v": [1, 1]}, schema=schema)
        while not state["quiet_ended"]:  # end only after the quiet one, so that it is idle, not ended
            yield None

    def quiet(partition, partitions):
        yield pa.record_batch({"ts": [10], "v": [100]}, schema=schema)
        for _ in range(300):
            if state["results_seen"]:
                break
            yield None
        state["results_when_quiet_ended"] = state["results_seen"]
        state["quiet_ended"] = True

    def seen(batch):
        state["results_seen"] += batch.num_rows

    flow = Dataflow("idle", idle_timeout=idle_timeout)
    a = flow.source("busy", GeneratorSource(schema, busy), event_time="ts")
    b = flow.source("quiet", GeneratorSource(schema, quiet), event_time="ts")
    windowed = a.union(b).window(Tumbling(1000), [agg("sum", "v")])
    windowed.sink(seen)
    windowed.collect("out")
    return flow, state


def test_idle_input_stops_holding_the_window_back():
    flow, state = idle_flow(idle_timeout=100)  # ms; the fake clock moves 50 ms per reading
    result = InlineExecutor(clock=fake_clock(), idle_sleep=0).run(flow)
    # Windows fired while the quiet source was still there, idle.
    assert state["results_when_quiet_ended"] > 0
    out = result.table("out")
    assert millis(out, "window_start") == [s * 1000 for s in range(10)]
    assert out["v_sum"].to_pylist() == [102] + [2] * 9
    assert out["is_update"].to_pylist() == [False] * 10


def test_without_idle_timeout_a_quiet_input_holds_every_window():
    flow, state = idle_flow(idle_timeout=None)
    result = InlineExecutor(clock=fake_clock(), idle_sleep=0).run(flow)
    assert state["results_when_quiet_ended"] == 0  # nothing fired until it ended
    out = result.table("out")
    assert out["v_sum"].to_pylist() == [102] + [2] * 9


def test_idle_input_that_resumes_after_the_other_ended_drives_the_watermark():
    schema = pa.schema([("ts", pa.int64()), ("v", pa.int64())])
    state = {"busy_ended": False, "results": [], "results_when_quiet_ended": None}

    def busy(partition, partitions):
        for second in range(3):
            yield pa.record_batch({"ts": [second * 1000], "v": [1]}, schema=schema)
        state["busy_ended"] = True

    def quiet(partition, partitions):
        yield pa.record_batch({"ts": [10], "v": [100]}, schema=schema)
        while not state["busy_ended"]:  # idle while the other one runs and ends
            yield None
        for _ in range(5):
            yield None
        yield pa.record_batch({"ts": [5000, 6000], "v": [10, 20]}, schema=schema)  # watermark 5999
        for _ in range(300):
            if any(t == 5000 for t in state["results"]):
                break
            yield None
        state["results_when_quiet_ended"] = list(state["results"])

    def seen(batch):
        state["results"].extend(batch.column("window_start").cast(pa.int64()).to_pylist())

    flow = Dataflow("resume", idle_timeout=100)
    a = flow.source("busy", GeneratorSource(schema, busy), event_time="ts")
    b = flow.source("quiet", GeneratorSource(schema, quiet), event_time="ts")
    windowed = a.union(b).window(Tumbling(1000), [agg("sum", "v")])
    windowed.sink(seen)
    windowed.collect("out")
    out = InlineExecutor(clock=fake_clock(), idle_sleep=0).run(flow).table("out")
    # [5000, 6000) fired on the quiet input's own watermark, before it ended.
    assert 5000 in state["results_when_quiet_ended"]
    assert millis(out, "window_start") == [0, 1000, 2000, 5000, 6000]
    assert out["v_sum"].to_pylist() == [101, 1, 1, 10, 20]
