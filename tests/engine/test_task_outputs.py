"""What a task sends where: an operator's urgent outputs are flushed at once, and tasks that
wait for nothing in event time (stateless operators and sinks) get no watermarks."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from engine import Dataflow, build_plan
from engine.operator import MAIN, Collector, Operator
from engine.task import Task, Watermark, needs_watermarks

SCHEMA = pa.schema([pa.field("ts", pa.timestamp("ms", "UTC")), pa.field("key", pa.string())])


class Alerts(Operator):
    """Passes rows through; its main output is urgent."""

    urgent_outputs = frozenset({MAIN})

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        out.emit(batch)


def rows() -> pa.Table:
    return pa.table({"ts": pa.array([1_000, 2_000], pa.int64()).cast(SCHEMA.field("ts").type), "key": ["a", "b"]})


def plan_and_vertex(name: str) -> tuple[Any, Any]:
    f = Dataflow("outputs")
    alerts = f.from_table("rows", rows(), "ts").key_by("key").process(Alerts, SCHEMA, "alerts")
    alerts.key_by("key").collect("out")
    plan = build_plan(f)
    return plan, next(v for v in plan.vertices if v.nodes[0].name == name)


class Capture:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def send(self, vertex: int, subtask: int, channel: int, message: Any) -> None:
        self.log.append(("send", type(message).__name__))

    def flush(self, vertex: int, subtask: int, channel: int) -> None:
        self.log.append(("flush", vertex))


def test_an_urgent_output_is_flushed_right_after_its_batch() -> None:
    plan, vertex = plan_and_vertex("alerts")
    transport = Capture()
    task = Task(plan, vertex, 0, transport)
    task.handle(0, rows().to_batches()[0], 0.0)
    assert transport.log[:2] == [("send", "RecordBatch"), ("flush", vertex.outputs[0].downstream)]


def test_no_watermarks_into_a_collect_sink() -> None:
    plan, vertex = plan_and_vertex("alerts")
    sink = vertex.outputs[0].downstream
    assert not needs_watermarks(plan, sink)
    assert needs_watermarks(plan, vertex.id)  # a process() operator may wait for event time
    transport = Capture()
    task = Task(plan, vertex, 0, transport)
    task._broadcast_control(0, Watermark(5_000))
    assert transport.log == []
