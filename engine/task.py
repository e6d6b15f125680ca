"""A task: one parallel instance of a vertex. It hosts the fused operators, tracks the
watermark over its input channels and routes outputs to channels, whatever the executor."""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import pyarrow as pa

from engine.operator import MAIN, Collector, Operator, Sink
from engine.partitioning import Broadcast, Forward, Hash
from engine.plan import PhysicalPlan, Vertex, VertexOutput
from engine.sources import EndOfInput, EventTimeAssigner, Source
from engine.state import EncodedState, StateError, encode_state
from engine.timeutil import MAX_WATERMARK, MIN_WATERMARK
from engine.watermarks import WatermarkTracker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Watermark:
    """Control message: event time has reached ``value`` on this channel."""

    value: int


@dataclass(frozen=True)
class EndOfStream:
    """Control message: nothing more will come on this channel."""


@dataclass(frozen=True)
class Barrier:
    """Control message: checkpoint ``checkpoint_id``; everything before it on this channel
    belongs to the checkpoint, everything after it to the next one."""

    checkpoint_id: int


Message: TypeAlias = pa.RecordBatch | Watermark | EndOfStream | Barrier


class Transport(Protocol):
    """How an executor carries a message to channel ``channel`` of task ``subtask`` of ``vertex``."""

    def send(self, vertex: int, subtask: int, channel: int, message: Message) -> None: ...

    # Optional: ``flush(vertex, subtask, channel)`` sends what waits for that channel at once
    # (batches of an operator's ``urgent_outputs``); a transport without it delivers at once.


@dataclass
class OperatorMetrics:
    """Rows and batches into and out of one operator of a task's chain (all its outputs)."""

    rows_in: int = 0
    batches_in: int = 0
    rows_out: int = 0
    batches_out: int = 0


@dataclass
class TaskMetrics:
    """Counters of one task; executors read them, the CLI and tests show them.

    ``rows_out`` is by output edge; the channel figures (frames, credits, latency) are kept
    by executors whose channels cross processes.
    """

    rows_in: int = 0
    batches_in: int = 0
    rows_out: dict[str, int] = field(default_factory=dict)
    unconsumed_rows: dict[str, int] = field(default_factory=dict)
    watermark: int = MIN_WATERMARK
    operators: dict[str, OperatorMetrics] = field(default_factory=dict)
    frames_in: int = 0
    frames_out: int = 0
    backpressure_s: float = 0.0
    max_in_flight: int = 0
    hop_latency_ms: list[float] = field(default_factory=list)  # a recent sample, sender -> this task
    # A recent sample of the time to process a frame, sending its outputs (and waiting for
    # credits to do so) included.
    batch_latency_ms: list[float] = field(default_factory=list)

    def watermark_lag_ms(self, now_ms: int) -> int | None:
        """Processing time minus the task's watermark; None before the first watermark."""
        if self.watermark <= MIN_WATERMARK or self.watermark >= MAX_WATERMARK:
            return None
        return now_ms - self.watermark


SnapshotListener: TypeAlias = Callable[[int, EncodedState], None]


def needs_watermarks(plan: PhysicalPlan, vertex_id: int, seen: frozenset[int] = frozenset()) -> bool:
    """False for a vertex whose operators are all stateless (filters, projections, sinks:
    nothing of theirs waits for event time) and that sends only to such vertices."""
    vertex = plan.vertices[vertex_id]
    if not all(node.stateless for node in vertex.nodes):
        return True
    seen = seen | {vertex_id}
    return any(edge.downstream not in seen and needs_watermarks(plan, edge.downstream, seen) for edge in vertex.outputs)


class Task:
    """Runs the operator chain of ``vertex`` for one subtask.

    Checkpoints (asynchronous barrier snapshotting, aligned): a source task snapshots when the
    executor calls ``trigger_checkpoint``; any other task when a checkpoint's barrier has come
    on every input channel that has not ended. A channel whose barrier came first is blocked
    until then: what arrives on it is held, in order, and handled after the snapshot. The
    snapshot (the source's place and every operator's state) is encoded at once and handed to
    ``snapshot_listener``, then the barrier goes on every output.
    """

    def __init__(self, plan: PhysicalPlan, vertex: Vertex, subtask: int, transport: Transport) -> None:
        self.plan = plan
        self.vertex = vertex
        self.subtask = subtask
        self.name = vertex.task_name(subtask)
        self.transport = transport
        self.channels = plan.channels_into(vertex, subtask)
        self.tracker = WatermarkTracker(len(self.channels), None if plan.idle_timeout_ms is None else plan.idle_timeout_ms / 1000)
        self.metrics = TaskMetrics()
        self.finished = False
        self.operators: list[Operator] = [node.factory() for node in vertex.nodes]
        for operator in self.operators:
            operator.open(subtask, vertex.parallelism)
        self._operator_metrics = [self.metrics.operators.setdefault(node.name, OperatorMetrics()) for node in vertex.nodes]
        self.collectors = [self._collector(position) for position in range(len(self.operators))]
        # Output edges that carry watermarks: not into a chain of stateless operators and sinks
        # that sends nowhere (a collect sink of dead letters): there they would only cost frames.
        self._watermark_edges = {i for i, edge in enumerate(vertex.outputs) if needs_watermarks(plan, edge.downstream)}
        # Resolved once: the label of each output edge and the channel index this task
        # writes to in each downstream task (looked up per message otherwise).
        self._labels = [f"{vertex.nodes[o.position].name}.{o.output}->{o.downstream}" for o in vertex.outputs]
        # Edges of an operator's urgent outputs: their batches are sent at once (no linger).
        self._urgent = {i for i, o in enumerate(vertex.outputs) if o.output in self.operators[o.position].urgent_outputs}
        self._channel_of: dict[tuple[int, int, int], int] = {}
        for edge in vertex.outputs:
            downstream = plan.vertices[edge.downstream]
            for target in self._targets(edge):
                channels = plan.channels_into(downstream, target)
                self._channel_of[(edge.downstream, edge.downstream_input, target)] = channels.index(
                    (edge.downstream_input, subtask)
                )
        self._sent_watermark: dict[int, int] = {}
        self._round_robin: dict[int, int] = {}
        # Checkpoint alignment: the checkpoint being aligned, the channels whose barrier came
        # (blocked), what they carried since (held), and the channels that ended.
        self.snapshot_listener: SnapshotListener | None = None
        self.give_up_listener: Callable[[int, str], None] | None = None  # checkpoint id, why
        self.max_held_rows = 1_000_000
        self._held_rows = 0
        self._given_up = 0
        self.aligning: int | None = None
        self._arrived: set[int] = set()
        self._held: list[deque[Message]] = [deque() for _ in self.channels]
        self._ended: set[int] = set()
        self._releasing = False
        self._source_states: dict[int, Any] = {}  # checkpoint id -> the source's place then
        self.last_checkpoint: int | None = None
        self.restored_finished = False
        self._final: EncodedState | None = None
        self._committed = 0
        # Each parallel instance reads its own partition through its own copy of the source.
        self.source = copy.copy(vertex.nodes[0].source)
        if self.source is not None:
            self.source.open(subtask, vertex.parallelism)

    # ---- wiring ---------------------------------------------------------------------------

    def _collector(self, position: int) -> Collector:
        node = self.vertex.nodes[position]
        emitters: dict[str, Callable[[pa.RecordBatch], None]] = {}
        for output in node.outputs:
            external = [i for i, o in enumerate(self.vertex.outputs) if o.position == position and o.output == output]
            if output == MAIN and position + 1 < len(self.operators):
                emitters[output] = self._to_next(position + 1)
            elif external:
                emitters[output] = self._to_edges(external)
            else:
                emitters[output] = self._unconsumed(f"{node.name}.{output}")
        counters = self._operator_metrics[position]
        return Collector({output: self._counted(counters, emit) for output, emit in emitters.items()})

    @staticmethod
    def _counted(counters: OperatorMetrics, emit: Callable[[pa.RecordBatch], None]) -> Callable[[pa.RecordBatch], None]:
        def counted(batch: pa.RecordBatch) -> None:
            counters.rows_out += batch.num_rows
            counters.batches_out += 1
            emit(batch)

        return counted

    def _to_next(self, position: int) -> Callable[[pa.RecordBatch], None]:
        operator = self.operators[position]
        counters = self._operator_metrics[position]

        def emit(batch: pa.RecordBatch) -> None:
            counters.rows_in += batch.num_rows
            counters.batches_in += 1
            operator.process_batch(batch, 0, self.collectors[position])

        return emit

    def _to_edges(self, edges: list[int]) -> Callable[[pa.RecordBatch], None]:
        def emit(batch: pa.RecordBatch) -> None:
            for index in edges:
                self._send_batch(index, self.vertex.outputs[index], batch)

        return emit

    def _unconsumed(self, label: str) -> Callable[[pa.RecordBatch], None]:
        def count(batch: pa.RecordBatch) -> None:
            if label not in self.metrics.unconsumed_rows:
                logger.warning("%s: rows on output %s, which nothing consumes; they are counted", self.name, label)
            self.metrics.unconsumed_rows[label] = self.metrics.unconsumed_rows.get(label, 0) + batch.num_rows

        return count

    def _send_batch(self, index: int, edge: VertexOutput, batch: pa.RecordBatch) -> None:
        parallelism = self.plan.vertices[edge.downstream].parallelism
        label = self._labels[index]
        self.metrics.rows_out[label] = self.metrics.rows_out.get(label, 0) + batch.num_rows
        partitioning = edge.partitioning
        urgent = index in self._urgent
        if isinstance(partitioning, Forward):
            self._deliver(edge, self.subtask, batch, urgent)
        elif isinstance(partitioning, Hash):
            for target, part in enumerate(partitioning.split(batch, parallelism)):
                if part.num_rows:
                    self._deliver(edge, target, part, urgent)
        elif isinstance(partitioning, Broadcast):
            for target in range(parallelism):
                self._deliver(edge, target, batch, urgent)
        else:  # Rebalance
            target = self._round_robin.get(index, self.subtask) % parallelism
            self._round_robin[index] = target + 1
            self._deliver(edge, target, batch, urgent)

    def _deliver(self, edge: VertexOutput, target: int, message: Message, urgent: bool = False) -> None:
        channel = self._channel_of[(edge.downstream, edge.downstream_input, target)]
        self.transport.send(edge.downstream, target, channel, message)
        flush = getattr(self.transport, "flush", None) if urgent else None
        if flush is not None:
            flush(edge.downstream, target, channel)

    def _targets(self, edge: VertexOutput) -> range:
        if isinstance(edge.partitioning, Forward):
            return range(self.subtask, self.subtask + 1)
        return range(self.plan.vertices[edge.downstream].parallelism)

    def _broadcast_control(self, position: int, message: Message) -> None:
        for index, edge in enumerate(self.vertex.outputs):
            if edge.position != position:
                continue
            if isinstance(message, Watermark):
                if index not in self._watermark_edges or self._sent_watermark.get(index, MIN_WATERMARK) >= message.value:
                    continue
                self._sent_watermark[index] = message.value
            for target in self._targets(edge):
                self._deliver(edge, target, message)

    # ---- driving --------------------------------------------------------------------------

    def handle(self, channel: int, message: Message, now: float) -> None:
        """Processes one message that arrived on input channel ``channel`` (or holds it, while
        the channel waits for the other channels' barriers)."""
        if channel in self._arrived:
            # Held, not silent: an idle timeout must not take a blocked channel for an idle one.
            self.tracker.on_activity(channel, now)
            self._held[channel].append(message)
            if isinstance(message, pa.RecordBatch):
                self._held_rows += message.num_rows
                if self._held_rows > self.max_held_rows:
                    self._give_up(now, f"more than {self.max_held_rows:,} rows held while aligning")
            return
        self._dispatch(channel, message, now)

    def _give_up(self, now: float, why: str) -> None:
        """Abandons the alignment under way: what was held is handled now, the checkpoint's
        barrier is not forwarded, and its late barriers are ignored."""
        assert self.aligning is not None
        checkpoint_id = self.aligning
        logger.warning("%s: checkpoint %d given up: %s", self.name, checkpoint_id, why)
        self._given_up = checkpoint_id
        self.aligning = None
        self._arrived.clear()
        if self.give_up_listener is not None:
            self.give_up_listener(checkpoint_id, why)
        self._release_held(now)

    def blocked(self, channel: int) -> bool:
        """True while the channel's barrier came and the checkpoint waits for other channels."""
        return channel in self._arrived

    def _dispatch(self, channel: int, message: Message, now: float) -> None:
        if isinstance(message, Barrier):
            self._on_barrier(channel, message.checkpoint_id, now)
        elif isinstance(message, pa.RecordBatch):
            self.tracker.on_activity(channel, now)
            self._count_in(message)
            input_index = self.vertex.inputs[self.channels[channel][0]].input_index
            self.operators[0].process_batch(message, input_index, self.collectors[0])
        elif isinstance(message, Watermark):
            advanced = self.tracker.on_watermark(channel, message.value, now)
            if advanced is not None:
                self._advance(advanced)
        else:
            self._ended.add(channel)
            advanced = self.tracker.on_end(channel, now)
            if advanced is not None and advanced != MAX_WATERMARK:
                self._advance(advanced)
            if self.aligning is not None:
                self._complete_alignment(now)  # an ended channel sends no barrier
            if self.tracker.all_ended():
                self.finish()

    # ---- checkpoints ----------------------------------------------------------------------

    def _on_barrier(self, channel: int, checkpoint_id: int, now: float) -> None:
        if checkpoint_id <= max(self.last_checkpoint or 0, self._given_up) and self.aligning is None:
            logger.debug("%s: barrier %d after checkpoint %d ignored", self.name, checkpoint_id, self.last_checkpoint)
            return
        if self.aligning is not None and checkpoint_id < self.aligning:
            logger.debug("%s: barrier %d after %d on channel %d ignored", self.name, checkpoint_id, self.aligning, channel)
            return
        if self.aligning is not None and checkpoint_id > self.aligning:
            # A newer checkpoint overtook one that never completed here (a source declined
            # it): give that one up, handle what it held, then align the new one.
            logger.info("%s: checkpoint %d abandoned for %d", self.name, self.aligning, checkpoint_id)
            self.aligning = None
            self._arrived.clear()
            self._held[channel].appendleft(Barrier(checkpoint_id))
            self._release_held(now)
            return
        self.aligning = checkpoint_id
        self._arrived.add(channel)
        self._complete_alignment(now)

    def _complete_alignment(self, now: float) -> None:
        assert self.aligning is not None
        if any(c not in self._arrived and c not in self._ended for c in range(len(self.channels))):
            return
        checkpoint_id = self.aligning
        self._snapshot(checkpoint_id)
        self.aligning = None
        self._arrived.clear()
        self._release_held(now)

    def _release_held(self, now: float) -> None:
        """Handles what blocked channels held, in order, until a channel blocks again."""
        if self._releasing:
            return  # an outer call is looping already
        self._releasing = True
        try:
            progress = True
            while progress:
                progress = False
                for channel, held in enumerate(self._held):
                    while held and channel not in self._arrived:
                        message = held.popleft()
                        if isinstance(message, pa.RecordBatch):
                            self._held_rows -= message.num_rows
                        self._dispatch(channel, message, now)
                        progress = True
        finally:
            self._releasing = False

    def trigger_checkpoint(self, checkpoint_id: int) -> bool:
        """A source task's checkpoint: snapshot now, between two polls; False if the task has
        ended (it cannot take part, and the checkpoint cannot complete)."""
        assert self.source is not None, "only source tasks are triggered; the others align barriers"
        if self.finished:
            return False
        if checkpoint_id <= (self.last_checkpoint or 0):
            return True  # a trigger that came late, after a newer one: its barrier would block downstream
        self._snapshot(checkpoint_id)
        return True

    def _snapshot(self, checkpoint_id: int) -> None:
        source_state = self.source.snapshot() if self.source is not None else None
        if self.source is not None:
            self._source_states[checkpoint_id] = source_state
        encoded = encode_state(self._state(source_state), where=f"task {self.name}, checkpoint {checkpoint_id}")
        if self.snapshot_listener is not None:
            self.snapshot_listener(checkpoint_id, encoded)
        self.last_checkpoint = checkpoint_id
        for position in range(len(self.operators)):
            self._broadcast_control(position, Barrier(checkpoint_id))

    def final_state(self) -> EncodedState:
        """What a task that has ended gives every later checkpoint (it sees no more barriers):
        its operators' state at the end (a sink's rows, say), marked finished, so that a
        restore only ends its outputs again. Everything it received is in it: its inputs all
        ended, and a barrier that came before their end made a snapshot of its own."""
        if self._final is not None:
            return self._final
        assert self.finished, "only a task that has ended has a final state"
        self._final = encode_state(self._state(None, finished=True), where=f"task {self.name}, at its end")
        return self._final

    def _state(self, source_state: Any, finished: bool = False) -> dict[str, Any]:
        """What a checkpoint keeps of the task: the source's place and each operator's state."""
        return {
            "task": self.name,
            "finished": finished,
            "source": source_state,
            "operators": [
                {"name": node.name, "state": operator.snapshot()}
                for node, operator in zip(self.vertex.nodes, self.operators, strict=True)
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Puts back the state of a checkpoint (a fresh task, before any message). A task that
        had ended by then is ``restored_finished``: the executor calls ``end_restored``."""
        names = [entry["name"] for entry in state["operators"]]
        expected = [node.name for node in self.vertex.nodes]
        if names != expected:
            raise StateError(f"task {self.name}: the checkpoint holds operators {names}, the plan has {expected}")
        self.restored_finished = bool(state.get("finished"))
        if self.source is not None and not self.restored_finished:
            self.source.restore(state["source"])
        for operator, entry in zip(self.operators, state["operators"], strict=True):
            if entry["state"] is not None:
                operator.restore(entry["state"])

    def commit(self, checkpoint_id: int, oldest_kept: int | None = None) -> None:
        """Checkpoint ``checkpoint_id`` completed on every task; ``oldest_kept`` is the oldest
        checkpoint still kept (a recovery may fall back to it if a newer one is damaged), so the
        source may drop only the input before that one's place. Commits that come late, after
        a newer one, are ignored."""
        if checkpoint_id <= self._committed:
            return
        self._committed = checkpoint_id
        for operator in self.operators:
            operator.on_commit(checkpoint_id)
        release = checkpoint_id if oldest_kept is None else min(oldest_kept, checkpoint_id)
        if self.source is not None and release in self._source_states:
            self.source.on_commit(release, self._source_states[release])
        self._source_states = {k: v for k, v in self._source_states.items() if k >= release}

    def poll_source(self) -> bool:
        """Reads one batch from the source (source tasks only); False if none was ready."""
        assert self.source is not None
        if self.finished:
            return False
        batch = self.source.poll()
        if isinstance(batch, EndOfInput):  # not identity: a source pickled by value brings its own copy
            self.finish()
            return True
        assigner = self.operators[0]
        assert isinstance(assigner, EventTimeAssigner)
        if batch is None:
            progress = self.source.progress()
            if progress is not None:
                assigner.advance_to(progress)
                watermark = assigner.take_watermark()
                if watermark is not None:
                    self._advance(watermark)
            return False
        assert isinstance(batch, pa.RecordBatch)
        self._count_in(batch)
        assigner.process_batch(batch, 0, self.collectors[0])
        watermark = assigner.take_watermark()
        if watermark is not None:
            self._advance(watermark)
        return True

    def _count_in(self, batch: pa.RecordBatch) -> None:
        self.metrics.rows_in += batch.num_rows
        self.metrics.batches_in += 1
        first = self._operator_metrics[0]
        first.rows_in += batch.num_rows
        first.batches_in += 1

    def tick(self, now: float) -> None:
        """Periodic processing-time hook: idle inputs, operators' timers."""
        if self.finished:
            return
        advanced = self.tracker.on_tick(now)
        if advanced is not None:
            self._advance(advanced)
        for operator, collector in zip(self.operators, self.collectors, strict=True):
            operator.on_tick(now, collector)

    def _advance(self, watermark: int) -> None:
        self.metrics.watermark = watermark
        value: int | None = watermark
        for position, (operator, collector) in enumerate(zip(self.operators, self.collectors, strict=True)):
            assert value is not None
            value = operator.on_watermark(value, collector)
            if value is None:
                return
            self._broadcast_control(position, Watermark(value))

    def finish(self) -> None:
        """All inputs ended: flush every window and join with the final watermark, then end."""
        if self.finished:
            return
        self._advance(MAX_WATERMARK)
        self._end()

    def abandon(self) -> None:
        """Releases what the operators and the source hold (ports, files) after a failure, as
        far as they let themselves be closed; the task is not run again."""
        closables: list[Operator | Source] = [*self.operators, *([self.source] if self.source is not None else [])]
        for closable in closables:
            try:
                closable.close()
            except Exception as exc:  # the task failed already; its first error is the one that counts
                logger.debug("%s: closing %s after a failure: %s", self.name, type(closable).__name__, exc)
        self.finished = True

    def end_restored(self) -> None:
        """Ends a task restored from a checkpoint taken after it had ended: its outputs end
        again (downstream tasks were restored with everything it had sent); nothing is flushed
        a second time."""
        self._end()

    def _end(self) -> None:
        for operator in self.operators:
            operator.close()
        if self.source is not None:
            self.source.close()
        for position in range(len(self.operators)):
            self._broadcast_control(position, EndOfStream())
        self.finished = True

    def results(self) -> dict[str, Any]:
        """What each sink of the chain kept, by sink name."""
        return {
            node.name: operator.result()
            for node, operator in zip(self.vertex.nodes, self.operators, strict=True)
            if isinstance(operator, Sink)
        }
