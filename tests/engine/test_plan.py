"""The physical plan: fusion of forward chains, exchanges and their partitioning, explain()."""

import pyarrow as pa
import pytest

from engine import Dataflow, OptionError, PlanError, build_plan, col
from engine.partitioning import Broadcast, Hash, Rebalance
from operators import Tumbling, agg

TABLE = pa.table({"ts": [0, 1000, 1500, 2500], "k": ["a", "b", "a", "b"], "v": [1, 2, 3, 4]})


def test_source_filter_select_collect_fuse_into_one_vertex(executor):
    flow = Dataflow("fuse")
    flow.from_table("src", TABLE, event_time="ts").filter(col("v") > 1, name="f").select("ts", "v", name="sel").collect("out")
    plan = build_plan(flow)
    assert len(plan.vertices) == 1
    vertex = plan.vertices[0]
    assert [n.name for n in vertex.nodes] == ["src", "f", "sel", "out"]
    assert vertex.inputs == [] and vertex.outputs == []
    assert vertex.is_source
    result = executor.run(plan).table("out")
    assert result.column_names == ["ts", "v"]
    assert result["v"].to_pylist() == [2, 3, 4]


def test_window_after_key_by_is_its_own_vertex_with_a_hash_edge():
    flow = Dataflow("keyed")
    src = flow.from_table("src", TABLE, event_time="ts")
    src.filter(col("v") > 0, name="f").key_by("k").window(Tumbling(1000), [agg("sum", "v")], name="w").collect("out")
    plan = build_plan(flow)
    assert [v.name for v in plan.vertices] == ["src -> f", "w -> out"]
    (edge,) = plan.vertices[1].inputs
    assert edge.upstream == 0
    assert edge.partitioning == Hash(("k",))
    (out_edge,) = plan.vertices[0].outputs
    assert (out_edge.position, out_edge.downstream, out_edge.partitioning) == (1, 1, Hash(("k",)))


def test_a_forward_edge_into_a_stateful_operator_fuses_too(executor):
    # As Flink chains operators: same parallelism, forward edge, one consumer -> one task.
    flow = Dataflow("global")
    flow.from_table("src", TABLE, event_time="ts").window(Tumbling(1000), [agg("count")], name="w").collect("out")
    plan = build_plan(flow)
    assert [v.name for v in plan.vertices] == ["src -> w -> out"]
    assert executor.run(plan).table("out")["count"].to_pylist() == [1, 2, 1]


def test_a_parallelism_change_before_a_window_is_an_exchange():
    flow = Dataflow("global")
    src = flow.from_table("src", TABLE, event_time="ts").with_parallelism(2)
    src.window(Tumbling(1000), [agg("count")], name="w").with_parallelism(1).collect("out")
    plan = build_plan(flow)
    assert [v.name for v in plan.vertices] == ["src", "w -> out"]
    assert plan.vertices[1].inputs[0].partitioning == Rebalance()


def test_key_by_placement_pins_values_to_tasks(executor):
    flow = Dataflow("placed", parallelism=3)
    src = flow.from_table("src", TABLE, event_time="ts").with_parallelism(1)
    src.key_by("k", placement={"a": 2, "b": 0}).window(Tumbling(1000), [agg("sum", "v")], name="w").collect("out")
    plan = build_plan(flow)
    assert "hash(k) placed {'a': 2, 'b': 0}" in plan.explain()
    result = executor.run(plan)
    by_task = [sorted(set(t["k"].to_pylist())) for t in result.outputs["out"]]
    assert by_task == [["b"], [], ["a"]]


def test_key_by_placement_is_checked():
    flow = Dataflow("placed", parallelism=2)
    src = flow.from_table("src", TABLE, event_time="ts")
    with pytest.raises(PlanError, match="single key column"):
        src.key_by("k", "v", placement={"a": 0})
    with pytest.raises(PlanError, match="task index"):
        src.key_by("k", placement={"a": -1})
    src.key_by("k", placement={"a": 5}).window(Tumbling(1000), [agg("count")], name="w").collect("out")
    with pytest.raises(PlanError, match="beyond its parallelism 2"):
        build_plan(flow)


def test_keyed_window_in_parallel_gives_the_same_result(executor):
    def run(parallelism):
        flow = Dataflow("par", parallelism=parallelism)
        src = flow.from_table("src", TABLE, event_time="ts").with_parallelism(1)
        src.key_by("k").window(Tumbling(1000), [agg("sum", "v")], name="w").collect("out")
        plan = build_plan(flow)
        result = executor.run(plan).table("out")
        return plan, sorted(zip(result["k"].to_pylist(), result["v_sum"].to_pylist(), strict=True))

    plan, rows = run(3)
    assert plan.vertices[1].parallelism == 3
    assert run(1)[1] == rows == [("a", 1), ("a", 3), ("b", 2), ("b", 4)]


def test_parallelism_change_gives_rebalance(executor):
    flow = Dataflow("rebalance")
    src = flow.from_table("src", TABLE, event_time="ts", batch_size=1)
    src.filter(col("v") > 0, name="f").with_parallelism(3).collect("out")
    plan = build_plan(flow)
    assert [(v.name, v.parallelism) for v in plan.vertices] == [("src", 1), ("f -> out", 3)]
    assert plan.vertices[1].inputs[0].partitioning == Rebalance()
    result = executor.run(plan)
    assert sorted(result.table("out")["v"].to_pylist()) == [1, 2, 3, 4]
    assert len(result.outputs["out"]) == 3
    # Round robin: four one-row batches over three tasks.
    assert sorted(t.num_rows for t in result.outputs["out"]) == [1, 1, 2]


def test_broadcast_sends_every_row_to_every_task(executor):
    flow = Dataflow("broadcast")
    src = flow.from_table("src", TABLE, event_time="ts")
    src.broadcast().filter(col("v") > 2, name="f").with_parallelism(2).collect("out")
    plan = build_plan(flow)
    assert plan.vertices[1].inputs[0].partitioning == Broadcast()
    result = executor.run(plan)
    assert [t["v"].to_pylist() for t in result.outputs["out"]] == [[3, 4], [3, 4]]


def test_an_output_read_twice_is_not_fused(executor):
    flow = Dataflow("twice")
    filtered = flow.from_table("src", TABLE, event_time="ts").filter(col("v") > 2, name="f")
    filtered.collect("o1")
    filtered.collect("o2")
    plan = build_plan(flow)
    assert [v.name for v in plan.vertices] == ["src -> f", "o1", "o2"]
    result = executor.run(plan)
    assert result.table("o1")["v"].to_pylist() == result.table("o2")["v"].to_pylist() == [3, 4]


def test_explain_text():
    flow = Dataflow("city", parallelism=2)
    src = flow.from_table("src", TABLE, event_time="ts").with_parallelism(1)
    src.filter(col("v") > 0, name="f").key_by("k").window(Tumbling(1000), [agg("count")], name="w").collect("out")
    assert build_plan(flow).explain() == (
        "job city: 2 vertices\n  [0] src -> f  x1\n  [1] w -> out  x2\n      <- [0].main hash(k) (input 0)"
    )


def test_explain_shows_both_join_inputs():
    flow = Dataflow("join")
    left = flow.from_table("left", TABLE, event_time="ts")
    right = flow.from_table("right", TABLE.rename_columns(["ts", "k", "w"]), event_time="ts")
    left.key_by("k").asof_join(right.key_by("k"), name="j").collect("out")
    text = build_plan(flow).explain()
    assert "[2] j -> out  x1" in text
    assert "<- [0].main hash(k) (input 0)" in text
    assert "<- [1].main hash(k) (input 1)" in text


def test_a_dataflow_without_sink_is_a_plan_error(executor):
    flow = Dataflow("nosink")
    flow.from_table("src", TABLE, event_time="ts").filter(col("v") > 0)
    with pytest.raises(PlanError) as error:
        build_plan(flow)
    assert error.value.operator == "nosink"
    assert "no sink" in str(error.value)
    with pytest.raises(PlanError):
        executor.run(flow)


def test_keyed_operator_in_parallel_needs_key_by_on_every_input():
    flow = Dataflow("join", parallelism=2)
    left = flow.from_table("left", TABLE, event_time="ts")
    right = flow.from_table("right", TABLE.rename_columns(["ts", "k", "w"]), event_time="ts")
    # The right side keeps its keys but is rebalanced, not hash partitioned.
    left.key_by("k").asof_join(right.key_by("k").rebalance(), name="j").collect("out")
    with pytest.raises(PlanError) as error:
        build_plan(flow)
    assert error.value.operator == "j"
    assert "right" in str(error.value) and "key_by" in str(error.value)


def test_global_window_cannot_run_in_parallel():
    flow = Dataflow("global")
    windowed = flow.from_table("src", TABLE, event_time="ts").window(Tumbling(1000), [agg("count")], name="w")
    with pytest.raises(PlanError) as error:
        windowed.with_parallelism(2)
    assert error.value.operator == "w"
    assert "key_by" in str(error.value)


def test_parallelism_below_one_is_an_option_error():
    with pytest.raises(OptionError):
        Dataflow("bad", parallelism=0)
    flow = Dataflow("bad")
    with pytest.raises(OptionError) as error:
        flow.from_table("src", TABLE, event_time="ts").with_parallelism(0)
    assert error.value.option == "parallelism"
