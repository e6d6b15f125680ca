"""The physical plan: vertices (fused chains of operators) with parallelism and partitioned edges.

A forward edge (same parallelism, no repartitioning) into an operator with one input, from an
output nothing else reads, fuses the operator into its upstream chain, stateful or not (as
Flink chains operators): one task, no hop, no copy. Every other edge is an exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.dataflow import Dataflow, Node
from engine.errors import PlanError
from engine.operator import MAIN
from engine.partitioning import Forward, Hash, Partitioning, Rebalance


@dataclass(frozen=True)
class VertexInput:
    """An exchange into a vertex: from which vertex and output, which operator input it feeds."""

    upstream: int
    output: str
    partitioning: Partitioning
    input_index: int


@dataclass(frozen=True)
class VertexOutput:
    """An exchange out of a vertex: the output of the chain's ``position``-th operator."""

    position: int
    output: str
    downstream: int
    downstream_input: int  # index into the downstream vertex's ``inputs``
    partitioning: Partitioning


@dataclass
class Vertex:
    """A chain of fused operators, run as ``parallelism`` tasks."""

    id: int
    nodes: list[Node]
    parallelism: int
    inputs: list[VertexInput] = field(default_factory=list)
    outputs: list[VertexOutput] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " -> ".join(node.name for node in self.nodes)

    @property
    def is_source(self) -> bool:
        return self.nodes[0].source is not None

    def task_name(self, subtask: int) -> str:
        return f"{self.nodes[0].name}[{subtask}]"


@dataclass
class PhysicalPlan:
    """Vertices in topological order, and the job options the executors need."""

    job: str
    vertices: list[Vertex]
    idle_timeout_ms: int | None

    def channels_into(self, vertex: Vertex, subtask: int) -> list[tuple[int, int]]:
        """The input channels of a task, as (vertex input index, upstream subtask), in order."""
        channels = []
        for position, edge in enumerate(vertex.inputs):
            upstream = self.vertices[edge.upstream]
            if isinstance(edge.partitioning, Forward):
                channels.append((position, subtask))
            else:
                channels.extend((position, u) for u in range(upstream.parallelism))
        return channels

    def explain(self) -> str:
        """A readable description of the plan (what ``citystream explain`` prints)."""
        lines = [f"job {self.job}: {len(self.vertices)} vertices"]
        for v in self.vertices:
            lines.append(f"  [{v.id}] {v.name}  x{v.parallelism}")
            for edge in v.inputs:
                lines.append(
                    f"      <- [{edge.upstream}].{edge.output} {_describe(edge.partitioning)} (input {edge.input_index})"
                )
        return "\n".join(lines)


def _describe(partitioning: Partitioning) -> str:
    if isinstance(partitioning, Hash):
        pinned = f" placed {dict(partitioning.placement)}" if partitioning.placement else ""
        return f"hash({', '.join(partitioning.keys)}){pinned}"
    return type(partitioning).__name__.lower()


def build_plan(flow: Dataflow) -> PhysicalPlan:
    """Turns a dataflow into a physical plan, fusing forward chains of operators."""
    if not any(node.is_sink for node in flow.nodes):
        raise PlanError(flow.name, "the dataflow has no sink: add collect(), sink() or count()")
    consumers: dict[tuple[int, str], int] = {}
    for node in flow.nodes:
        for edge in node.inputs:
            key = (id(edge.node), edge.output)
            consumers[key] = consumers.get(key, 0) + 1

    vertex_of: dict[int, Vertex] = {}
    vertices: list[Vertex] = []
    for node in flow.nodes:
        partitionings = [_resolve(edge.node, node, edge.partitioning) for edge in node.inputs]
        if node.keyed and node.parallelism > 1:
            for edge, partitioning in zip(node.inputs, partitionings, strict=True):
                if not isinstance(partitioning, Hash):
                    raise PlanError(node.name, f"input from '{edge.node.name}' must be key_by'd to run in parallel")
        for partitioning in partitionings:
            if isinstance(partitioning, Hash) and any(task >= node.parallelism for _, task in partitioning.placement):
                raise PlanError(
                    node.name,
                    f"key_by placement {dict(partitioning.placement)} names a task beyond its parallelism {node.parallelism}",
                    partitioning.keys[0],
                )
        if len(node.inputs) == 1 and _fusible(node, partitionings[0], consumers, vertex_of):
            vertex = vertex_of[id(node.inputs[0].node)]
            vertex.nodes.append(node)
            vertex_of[id(node)] = vertex
            continue
        vertex = Vertex(len(vertices), [node], node.parallelism)
        vertices.append(vertex)
        vertex_of[id(node)] = vertex
        for input_index, (edge, partitioning) in enumerate(zip(node.inputs, partitionings, strict=True)):
            upstream = vertex_of[id(edge.node)]
            vertex.inputs.append(VertexInput(upstream.id, edge.output, partitioning, input_index))
            upstream.outputs.append(
                VertexOutput(upstream.nodes.index(edge.node), edge.output, vertex.id, len(vertex.inputs) - 1, partitioning)
            )
    return PhysicalPlan(flow.name, vertices, flow.idle_timeout_ms)


def _resolve(upstream: Node, downstream: Node, requested: Partitioning | None) -> Partitioning:
    if requested is not None:
        if isinstance(requested, Forward) and upstream.parallelism != downstream.parallelism:
            raise PlanError(downstream.name, "a forward edge needs the same parallelism on both ends")
        return requested
    return Forward() if upstream.parallelism == downstream.parallelism else Rebalance()


def _fusible(node: Node, partitioning: Partitioning, consumers: dict[tuple[int, str], int], vertex_of: dict[int, Vertex]) -> bool:
    edge = node.inputs[0]
    upstream_vertex = vertex_of[id(edge.node)]
    return (
        isinstance(partitioning, Forward)
        and edge.output == MAIN
        and consumers[(id(edge.node), edge.output)] == 1
        and upstream_vertex.nodes[-1] is edge.node
    )
