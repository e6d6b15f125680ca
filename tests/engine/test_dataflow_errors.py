"""Build-time errors: every wrong column, type, union or option fails when the graph is built,
naming the operator and the column."""

from datetime import timedelta

import pyarrow as pa
import pytest

from engine import Dataflow, OptionError, PlanError, call, col
from operators import Hopping, Session, Tumbling, agg

TABLE = pa.table({"ts": [0, 1000], "k": ["a", "b"], "score": [0.5, 0.9], "n": [1, 2]})


def source(flow=None, name="src", table=TABLE):
    flow = flow or Dataflow("errors")
    return flow.from_table(name, table, event_time="ts")


def plan_error(build):
    with pytest.raises(PlanError) as error:
        build()
    return error.value


def test_unknown_column_in_filter():
    error = plan_error(lambda: source().filter(col("scroe") > 0.5, name="high"))
    assert (error.operator, error.column) == ("high", "scroe")
    assert "operator 'high', column 'scroe'" in str(error)
    assert "unknown column" in str(error)


def test_non_boolean_predicate():
    error = plan_error(lambda: source().filter(col("score") * 2, name="f"))
    assert error.operator == "f"
    assert "double" in str(error) and "not a boolean" in str(error)


def test_predicate_must_be_an_expression():
    error = plan_error(lambda: source().filter("score > 0.5", name="f"))
    assert error.operator == "f" and "expression" in str(error)


def test_wrong_types_in_expression():
    error = plan_error(lambda: source().filter(col("k") > 1, name="f"))
    assert error.operator == "f"
    assert "does not fit the column types" in str(error)
    error = plan_error(lambda: source().select("ts", upper=call("utf8_upper", col("score")), name="sel"))
    assert error.operator == "sel"


def test_unknown_column_in_select_and_with_columns():
    error = plan_error(lambda: source().select("ts", "nope", name="sel"))
    assert (error.operator, error.column) == ("sel", "nope")
    error = plan_error(lambda: source().with_columns(name="wc", doubled=col("nope") * 2))
    assert (error.operator, error.column) == ("wc", "nope")


def test_select_dropping_the_event_time_column():
    error = plan_error(lambda: source().select("k", "score", name="sel"))
    assert (error.operator, error.column) == ("sel", "ts")
    assert "event-time column must be kept" in str(error)


def test_select_changing_the_event_time_type():
    error = plan_error(lambda: source().select("k", ts=col("n"), name="sel"))
    assert (error.operator, error.column) == ("sel", "ts")


def test_map_batches_dropping_the_event_time_column():
    error = plan_error(lambda: source().map_batches(lambda b: b.select(["k"]), name="mb"))
    assert (error.operator, error.column) == ("mb", "ts")


def test_map_batches_failing_on_an_empty_batch():
    def broken(batch):
        raise ValueError("boom")

    error = plan_error(lambda: source().map_batches(broken, name="mb"))
    assert error.operator == "mb" and "boom" in str(error) and "schema=" in str(error)


def test_union_with_a_missing_column():
    flow = Dataflow("u")
    a = source(flow, "a")
    b = source(flow, "b", TABLE.drop_columns(["n"]))
    error = plan_error(lambda: a.union(b, name="both"))
    assert (error.operator, error.column) == ("both", "n")
    assert "'b' has no such column" in str(error)


def test_union_with_a_different_type():
    flow = Dataflow("u")
    a = source(flow, "a")
    b = source(flow, "b", TABLE.set_column(3, "n", pa.array([1.0, 2.0])))
    error = plan_error(lambda: a.union(b, name="both"))
    assert (error.operator, error.column) == ("both", "n")
    assert "double" in str(error) and "int64" in str(error)


def test_union_with_an_extra_column():
    flow = Dataflow("u")
    a = source(flow, "a")
    b = source(flow, "b", TABLE.append_column("extra", pa.array([1, 2])))
    error = plan_error(lambda: a.union(b, name="both"))
    assert (error.operator, error.column) == ("both", "extra")
    assert "lack" in str(error)


def test_union_with_a_different_event_time_column():
    flow = Dataflow("u")
    a = source(flow, "a")
    b = flow.from_table("b", TABLE.append_column("when", pa.array([0, 1])), event_time="when")
    error = plan_error(lambda: a.union(b, name="both"))
    assert (error.operator, error.column) == ("both", "when")
    assert "event-time columns differ" in str(error)


def test_unknown_event_time_column_in_a_source():
    flow = Dataflow("s")
    error = plan_error(lambda: flow.from_table("readings", TABLE, event_time="time"))
    assert (error.operator, error.column) == ("readings", "time")
    assert "does not exist" in str(error)


def test_event_time_column_of_a_wrong_type():
    flow = Dataflow("s")
    error = plan_error(lambda: flow.from_table("readings", TABLE, event_time="score"))
    assert (error.operator, error.column) == ("readings", "score")


def test_duplicate_operator_name():
    flow = Dataflow("s")
    source(flow, "a")
    error = plan_error(lambda: source(flow, "a"))
    assert error.operator == "a" and "already" in str(error)


def test_join_keys_of_different_types():
    flow = Dataflow("j")
    left = source(flow, "left")
    right = source(flow, "right", pa.table({"ts": [0], "k": [1], "temp": [20.0]}))
    error = plan_error(lambda: left.key_by("k").asof_join(right.key_by("k"), name="enrich"))
    assert (error.operator, error.column) == ("enrich", "k")
    assert "string" in str(error) and "int64" in str(error)
    error = plan_error(lambda: left.key_by("k").interval_join(right.key_by("k"), within=1000, name="pairs"))
    assert (error.operator, error.column) == ("pairs", "k")


def test_join_without_key_by():
    flow = Dataflow("j")
    left = source(flow, "left")
    right = source(flow, "right", pa.table({"ts": [0], "k": ["a"], "temp": [20.0]}))
    error = plan_error(lambda: left.asof_join(right.key_by("k"), name="enrich"))
    assert error.operator == "enrich" and "key_by" in str(error)


def test_key_by_unknown_column():
    error = plan_error(lambda: source().key_by("district"))
    assert (error.operator, error.column) == ("src", "district")


def test_unknown_aggregate_column():
    error = plan_error(lambda: source().key_by("k").window(Tumbling(1000), [agg("sum", "scor")], name="w"))
    assert (error.operator, error.column) == ("w", "scor")
    assert "scor_sum" in str(error)


def test_aggregate_of_a_wrong_type():
    error = plan_error(lambda: source().window(Tumbling(1000), [agg("sum", "k")], name="w"))
    assert (error.operator, error.column) == ("w", "k")
    error = plan_error(lambda: source().window(Tumbling(1000), [agg("mean", "k")], name="w2"))
    assert (error.operator, error.column) == ("w2", "k")


def test_unknown_aggregate_function_and_missing_column():
    with pytest.raises(PlanError, match="unknown aggregate 'median'"):
        agg("median", "score")
    with pytest.raises(PlanError, match="needs a column"):
        agg("sum")


def test_aggregate_name_clashing_with_a_key():
    error = plan_error(lambda: source().key_by("k").window(Tumbling(1000), [agg("max", "score", name="k")], name="w"))
    assert (error.operator, error.column) == ("w", "k")


def test_hopping_slide_longer_than_size():
    error = plan_error(lambda: source().window(Hopping(size=1000, slide=2000), [agg("count")], name="w"))
    assert error.operator == "w"
    assert "slide (2000 ms) is longer than size (1000 ms)" in str(error)


def test_window_needs_an_aggregate():
    error = plan_error(lambda: source().window(Tumbling(1000), [], name="w"))
    assert error.operator == "w"


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda s: s.window(Tumbling(-1000), [agg("count")]), "size"),
        (lambda s: s.window(Tumbling(0), [agg("count")]), "size"),
        (lambda s: s.window(Tumbling(timedelta(seconds=-1)), [agg("count")]), "size"),
        (lambda s: s.window(Tumbling(1000, allowed_lateness=-1), [agg("count")]), "allowed_lateness"),
        (lambda s: s.window(Hopping(1000, 0), [agg("count")]), "slide"),
        (lambda s: s.window(Session(gap=-5), [agg("count")]), "gap"),
        (lambda s: s.window(Tumbling(1.5), [agg("count")]), "size"),
        (lambda s: s.with_parallelism(0), "parallelism"),
    ],
)
def test_option_errors(build, option):
    with pytest.raises(OptionError) as error:
        build(source())
    assert error.value.option == option
    assert f"option '{option}'" in str(error.value)


def test_option_errors_of_dataflow_and_source():
    with pytest.raises(OptionError) as error:
        Dataflow("x", parallelism=0)
    assert error.value.option == "parallelism"
    with pytest.raises(OptionError) as error:
        Dataflow("x", idle_timeout=0)
    assert error.value.option == "idle_timeout"
    with pytest.raises(OptionError) as error:
        Dataflow("x").from_table("src", TABLE, event_time="ts", out_of_orderness=-1)
    assert error.value.option == "out_of_orderness"


def test_join_option_errors():
    flow = Dataflow("j")
    left = source(flow, "left").key_by("k")
    right = source(flow, "right", pa.table({"ts": [0], "k": ["a"], "temp": [20.0]})).key_by("k")
    with pytest.raises(OptionError) as error:
        left.asof_join(right, tolerance=-1)
    assert error.value.option == "tolerance"
    with pytest.raises(OptionError) as error:
        left.interval_join(right, within=-5)
    assert error.value.option == "within"
    with pytest.raises(OptionError):
        left.interval_join(right)  # no bound at all
    with pytest.raises(OptionError) as error:
        left.interval_join(right, lower=100, upper=-100)
    assert error.value.option == "lower"


def test_validation_must_be_boolean():
    flow = Dataflow("v")
    error = plan_error(lambda: flow.from_table("src", TABLE, event_time="ts", validate={"score": col("score") * 2}))
    assert error.operator == "src" and "validation 'score'" in str(error)
    error = plan_error(lambda: source().validate({"bad": col("nope") > 0}, name="check"))
    assert (error.operator, error.column) == ("check", "nope")


def test_side_output_that_does_not_exist():
    error = plan_error(lambda: source().filter(col("n") > 0, name="f").late())
    assert error.operator == "f" and "late" in str(error)
