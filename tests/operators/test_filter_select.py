"""Stateless operators: filter, select, with_columns, map_batches, validate, union."""

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine import Dataflow, JobFailed, call, col, lit
from engine.timeutil import EVENT_TIME_TYPE

TABLE = pa.table(
    {
        "ts": [0, 1000, 2000, 3000],
        "a": [1, 2, 3, 4],
        "s": ["north", "south", None, "east"],
        "score": [0.2, 0.9, 0.5, 1.7],
    }
)


def run(executor, build, table=TABLE, **source_options):
    """Builds source -> build(stream) -> collect("out"), runs it, returns (out table, result)."""
    flow = Dataflow("ops")
    stream = build(flow.from_table("src", table, event_time="ts", **source_options))
    stream.collect("out")
    result = executor.run(flow)
    return result.table("out"), result


def millis(table, column="ts"):
    return table.column(column).cast(pa.int64()).to_pylist()


def test_filter(executor):
    out, _ = run(executor, lambda s: s.filter(col("a") > 2))
    assert out["a"].to_pylist() == [3, 4]
    assert millis(out) == [2000, 3000]
    assert out.schema.equals(pa.schema([("ts", EVENT_TIME_TYPE), ("a", pa.int64()), ("s", pa.string()), ("score", pa.float64())]))


def test_filter_null_is_false(executor):
    out, _ = run(executor, lambda s: s.filter(call("starts_with", col("s"), pattern="n") | (col("a") == 4)))
    assert out["a"].to_pylist() == [1, 4]  # the null s row is dropped


def test_filter_keeping_nothing_and_chained_filters(executor):
    out, _ = run(executor, lambda s: s.filter(col("a") > 100))
    assert out.num_rows == 0
    assert out.column_names == ["ts", "a", "s", "score"]
    out, _ = run(executor, lambda s: s.filter(col("a") > 1).filter(col("score") < 1))
    assert out["a"].to_pylist() == [2, 3]


def test_filter_with_a_literal_predicate(executor):
    out, _ = run(executor, lambda s: s.filter(lit(True)))
    assert out["a"].to_pylist() == [1, 2, 3, 4]
    out, _ = run(executor, lambda s: s.filter(lit(False)))
    assert out.num_rows == 0


def test_select_with_computed_columns(executor):
    out, _ = run(executor, lambda s: s.select("ts", "a", doubled=col("a") * 2, upper=call("utf8_upper", col("s")), one=lit(1)))
    assert out.column_names == ["ts", "a", "doubled", "upper", "one"]
    assert out.to_pydict() | {"ts": millis(out)} == {
        "ts": [0, 1000, 2000, 3000],
        "a": [1, 2, 3, 4],
        "doubled": [2, 4, 6, 8],
        "upper": ["NORTH", "SOUTH", None, "EAST"],
        "one": [1, 1, 1, 1],
    }
    assert out.schema.field("doubled").type == pa.int64()
    assert out.schema.field("upper").type == pa.string()


def test_select_reorders_and_drops(executor):
    out, _ = run(executor, lambda s: s.select("score", "ts"))
    assert out.column_names == ["score", "ts"]
    assert out["score"].to_pylist() == [0.2, 0.9, 0.5, 1.7]


def test_with_columns_adds_and_replaces(executor):
    out, _ = run(executor, lambda s: s.with_columns(a=col("a") + 10, ratio=col("score") / 2))
    assert out.column_names == ["ts", "s", "score", "a", "ratio"]
    assert out["a"].to_pylist() == [11, 12, 13, 14]
    assert out["ratio"].to_pylist() == pytest.approx([0.1, 0.45, 0.25, 0.85])


def test_map_batches_with_an_explicit_schema(executor):
    schema = pa.schema([("ts", EVENT_TIME_TYPE), ("a", pa.int64()), ("square", pa.int64())])

    def square(batch):
        a = batch.column("a")
        return pa.RecordBatch.from_arrays([batch.column("ts"), a, pc.multiply(a, a)], schema=schema)

    out, _ = run(executor, lambda s: s.map_batches(square, schema=schema), batch_size=3)
    assert out.schema.equals(schema)
    assert out["square"].to_pylist() == [1, 4, 9, 16]


def test_map_batches_with_an_inferred_schema(executor):
    def tag(batch):
        return batch.select(["ts", "a"]).append_column(
            "tag", pc.binary_join_element_wise(pc.cast(batch.column("a"), pa.string()), "x", "")
        )

    out, _ = run(executor, lambda s: s.map_batches(tag), batch_size=2)
    assert out.column_names == ["ts", "a", "tag"]
    assert out["tag"].to_pylist() == ["1x", "2x", "3x", "4x"]


def test_map_batches_may_return_a_table_or_drop_a_batch(executor):
    def keep_big(batch):
        if pc.max(batch.column("a")).as_py() < 3:
            return None
        return pa.Table.from_batches([batch])

    schema = pa.schema([("ts", EVENT_TIME_TYPE), ("a", pa.int64()), ("s", pa.string()), ("score", pa.float64())])
    out, _ = run(executor, lambda s: s.map_batches(keep_big, schema=schema), batch_size=2)
    assert out["a"].to_pylist() == [3, 4]


def test_map_batches_returning_another_schema_fails_the_job(executor):
    schema = pa.schema([("ts", EVENT_TIME_TYPE), ("a", pa.int64())])

    def wrong(batch):
        return batch.select(["ts", "a"]).append_column("extra", batch.column("a"))

    with pytest.raises(JobFailed) as error:
        run(executor, lambda s: s.map_batches(wrong, schema=schema, name="mb"))
    assert "mb" in str(error.value)
    assert isinstance(error.value.cause, TypeError)


def test_validate_sends_failing_rows_to_the_dead_letter(executor):
    flow = Dataflow("validate")
    checked = flow.from_table("src", TABLE, event_time="ts").validate(
        {"score <= 1": col("score") <= 1, "has s": col("s").is_valid()}, name="check"
    )
    checked.collect("out")
    checked.dead_letter().collect("dead")
    result = executor.run(flow)
    assert result.table("out")["a"].to_pylist() == [1, 2]
    dead = result.table("dead")
    assert dead.column_names == ["ts", "a", "s", "score", "reason"]
    assert dead.select(["a", "reason"]).to_pylist() == [
        {"a": 3, "reason": "has s"},
        {"a": 4, "reason": "score <= 1"},
    ]
    assert millis(dead) == [2000, 3000]
    assert result.unconsumed() == {}


def test_validate_that_refuses_nothing(executor):
    out, result = run(executor, lambda s: s.validate({"positive": col("a") > 0}))
    assert out["a"].to_pylist() == [1, 2, 3, 4]
    assert result.unconsumed() == {}


def test_unconsumed_dead_letter_is_counted(executor):
    out, result = run(executor, lambda s: s.validate({"score <= 1": col("score") <= 1}, name="check"))
    assert out["a"].to_pylist() == [1, 2, 3]
    assert result.unconsumed() == {"check.dead_letter": 1}


def test_union_of_two_sources(executor):
    flow = Dataflow("union")
    first = flow.from_table("first", TABLE.slice(0, 2), event_time="ts")
    second = flow.from_table(
        "second", pa.table({"ts": [500, 1500], "a": [10, 20], "s": ["x", "y"], "score": [0.0, 0.1]}), event_time="ts"
    )
    first.union(second).collect("out")
    out = executor.run(flow).table("out")
    assert sorted(zip(millis(out), out["a"].to_pylist(), strict=True)) == [(0, 1), (500, 10), (1000, 2), (1500, 20)]


def test_union_of_three_streams_then_filter(executor):
    flow = Dataflow("union3")
    base = flow.from_table("src", TABLE, event_time="ts")
    low = base.filter(col("a") <= 2, name="low")
    high = base.filter(col("a") > 2, name="high")
    other = flow.from_table("other", TABLE.slice(0, 1), event_time="ts")
    low.union(high, other).filter(col("a") != 2).collect("out")
    out = executor.run(flow).table("out")
    assert sorted(out["a"].to_pylist()) == [1, 1, 3, 4]
