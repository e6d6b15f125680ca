"""The Ray executor: every task of a plan runs in its own Ray actor, and channels are actor
calls that carry frames (Arrow batches plus msgpack control) under credit-based backpressure.

The task logic is ``engine.task.Task``, as in the inline executor; this module only hosts tasks
in actors and carries their channels (``engine.channels``). It is the only module of the engine
that imports Ray.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import pickle
import queue
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import pyarrow as pa
import ray
import ray.util.metrics as ray_metrics
from ray.actor import ActorHandle
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from engine.channels import ChannelOptions, ChannelWriter, ReorderBuffer, decode_frame
from engine.checkpoint import (
    Checkpoint,
    CheckpointCoordinator,
    CheckpointOptions,
    CheckpointStats,
    CheckpointStorage,
    TaskReport,
    restore_error,
    task_key,
)
from engine.dataflow import Dataflow
from engine.errors import CitystreamError, JobFailed, OptionError
from engine.executor import Executor, JobResult, check_replayable
from engine.plan import PhysicalPlan, Vertex
from engine.state import EncodedState
from engine.task import Message, Task, TaskMetrics

logger = logging.getLogger(__name__)

LATENCY_SAMPLE = 2048  # latencies each task keeps for percentiles
TICK_S = 0.05  # processing-time tick of every task (idle inputs, operators' timers)
EXPORT_S = 1.0  # how often a task pushes its counters to Ray's metrics
CHECK_S = 0.05  # how often the coordinator looks at its tasks and the checkpoint interval


@dataclass(frozen=True)
class ActorOptions:
    """Where and with what an actor of the job runs; maps to Ray's actor options.

    Args:
        num_cpus: CPUs reserved for the actor (fractional allowed). None: Ray's default for
            actors (needs a node with a CPU to be placed, reserves none while running).
        memory: bytes of memory reserved for the actor, or None.
        resources: custom resources the actor needs, such as ``{"gateway": 1}`` for nodes
            labelled for gateways.
        scheduling_strategy: ``"DEFAULT"`` (Ray packs actors where resources are) or
            ``"SPREAD"`` (across nodes).
    """

    num_cpus: float | None = None
    memory: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    scheduling_strategy: Literal["DEFAULT", "SPREAD"] = "DEFAULT"

    def __post_init__(self) -> None:
        if self.num_cpus is not None and (not isinstance(self.num_cpus, int | float) or self.num_cpus < 0):
            raise OptionError("num_cpus", self.num_cpus, "a number of CPUs >= 0 (fractions allowed) or None")
        if self.memory is not None and (not isinstance(self.memory, int) or self.memory <= 0):
            raise OptionError("memory", self.memory, "a number of bytes > 0 or None")
        if self.scheduling_strategy not in ("DEFAULT", "SPREAD"):
            raise OptionError("scheduling_strategy", self.scheduling_strategy, "'DEFAULT' or 'SPREAD'")
        for name, amount in self.resources.items():
            if not isinstance(amount, int | float) or amount < 0:
                raise OptionError(f"resources[{name!r}]", amount, "a quantity >= 0")

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"scheduling_strategy": self.scheduling_strategy}
        if self.num_cpus is not None:
            options["num_cpus"] = self.num_cpus
        if self.memory is not None:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = dict(self.resources)
        return options


GROUP_STRATEGIES = ("SPREAD", "STRICT_SPREAD", "PACK", "STRICT_PACK")


@dataclass(frozen=True)
class Colocation:
    """Tasks placed together: the job gets a Ray placement group of one bundle per task of the
    operator ``anchor``, placed across the nodes with ``strategy``; task i of the anchor runs in
    bundle i, and each task of an operator in ``near`` in the bundle of the anchor task it is
    mapped to (so the city's camera actors run on the node of their district's actor).

    The driver places the group when the job starts (the job fails if Ray cannot place every
    bundle within the start timeout); it is removed when the job ends or is cancelled. The
    bundles reserve ``bundle`` meanwhile. After a lost node Ray places that node's bundles again
    on the others if they have the room; if they have not within 30 s, the recovered tasks are
    placed without the group (a warning says so) rather than wait. A task in a bundle reserves
    nothing of its own unless its ``ActorOptions`` say so (its ``num_cpus`` then comes out of
    the bundle).

    Args:
        anchor: the name of the operator whose tasks get a bundle each.
        strategy: how Ray places the bundles: ``"SPREAD"`` (over as many nodes as it can),
            ``"STRICT_SPREAD"`` (each on a node of its own: fails with fewer nodes than
            bundles), ``"PACK"`` (as few nodes as it can), ``"STRICT_PACK"`` (one node).
        bundle: resources of each bundle, at least one of them above 0 (``{"CPU": 1}``).
        near: operator name -> for each of its tasks, the anchor task to run next to (None:
            anywhere).
    """

    anchor: str
    strategy: Literal["SPREAD", "STRICT_SPREAD", "PACK", "STRICT_PACK"] = "SPREAD"
    bundle: Mapping[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    near: Mapping[str, Sequence[int | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in GROUP_STRATEGIES:
            raise OptionError("strategy", self.strategy, " or ".join(repr(s) for s in GROUP_STRATEGIES))
        if not self.bundle or any(not isinstance(v, int | float) or v < 0 for v in self.bundle.values()):
            raise OptionError("bundle", dict(self.bundle), "resources with quantities >= 0")
        if not any(v > 0 for v in self.bundle.values()):
            raise OptionError("bundle", dict(self.bundle), "at least one resource above 0 (Ray places no empty bundle)")

    def bundles_of(self, plan: PhysicalPlan) -> dict[tuple[int, int], int]:
        """(vertex id, subtask) -> bundle index of every task placed in the group; raises if
        an operator named here is not in the plan or its mapping does not fit it."""
        vertices = {node.name: vertex for vertex in plan.vertices for node in vertex.nodes}
        if self.anchor not in vertices:
            raise CitystreamError(f"colocation: no operator '{self.anchor}' in job '{plan.job}'; it has {sorted(vertices)}")
        anchor = vertices[self.anchor]
        placed = {(anchor.id, i): i for i in range(anchor.parallelism)}
        for name, targets in self.near.items():
            vertex = vertices.get(name)
            if vertex is None:
                raise CitystreamError(f"colocation: no operator '{name}' in job '{plan.job}'; it has {sorted(vertices)}")
            if vertex.id == anchor.id:
                raise CitystreamError(f"colocation: '{name}' runs in the tasks of the anchor '{self.anchor}' already")
            if len(targets) != vertex.parallelism:
                raise CitystreamError(
                    f"colocation: '{name}' has {vertex.parallelism} tasks but {len(targets)} places were given for them"
                )
            for subtask, target in enumerate(targets):
                if target is None:
                    continue
                if not isinstance(target, int) or not 0 <= target < anchor.parallelism:
                    raise CitystreamError(
                        f"colocation: task {subtask} of '{name}' is to run next to task {target!r} of "
                        f"'{self.anchor}', which has tasks 0 to {anchor.parallelism - 1}"
                    )
                placed[(vertex.id, subtask)] = target
        return placed


@dataclass
class TaskOutcome:
    """What a task actor reports when it ends: its sinks' results, or the error that stopped it."""

    task: str
    results: dict[str, Any]
    metrics: TaskMetrics
    error: BaseException | None = None
    traceback: str = ""
    # With checkpoints: the task's state at its end, which stands for it in later checkpoints,
    # and the last checkpoint it took part in itself.
    final_state: EncodedState | None = None
    last_checkpoint: int | None = None


class _Outbox:
    """The transport of one task actor: a channel writer per downstream channel."""

    def __init__(self, options: ChannelOptions, wake: threading.Event) -> None:
        self.options = options
        self.event_times: dict[tuple[int, int, int], str | None] = {}
        self.peers: dict[tuple[int, int], ActorHandle] = {}
        self.writers: dict[tuple[int, int, int], ChannelWriter[ray.ObjectRef]] = {}
        self._wake = wake

    def send(self, vertex: int, subtask: int, channel: int, message: Message) -> None:
        key = (vertex, subtask, channel)
        writer = self.writers.get(key)
        if writer is None:
            writer = self.writers[key] = self._writer(self.peers[(vertex, subtask)], channel, self.event_times.get(key))
        was_empty = not writer.pending
        writer.write(message)
        if was_empty and writer.pending and self.options.linger_ms > 0:
            self._wake.set()

    def flush(self, vertex: int, subtask: int, channel: int) -> None:
        """Sends the pending frame of one channel now (an urgent output's batch)."""
        writer = self.writers.get((vertex, subtask, channel))
        if writer is not None and writer.pending:
            writer.flush()

    def _writer(self, peer: ActorHandle, channel: int, event_time: str | None) -> ChannelWriter[ray.ObjectRef]:
        def send(seq: int, batches: list[pa.RecordBatch], control: bytes) -> ray.ObjectRef:
            return peer.push.remote(channel, seq, time.time_ns(), batches, control)

        return ChannelWriter(self.options, send, _wait_one, event_time)

    def flush_due(self, now: float) -> None:
        for writer in self.writers.values():
            if writer.pending and writer.due(now):
                writer.flush()

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (w.deadline for w in self.writers.values()) if d is not None]
        return min(deadlines) if deadlines else None

    def drain(self) -> None:
        for writer in self.writers.values():
            writer.drain()


def _event_times_of_outputs(plan: PhysicalPlan, vertex: Vertex, subtask: int) -> dict[tuple[int, int, int], str | None]:
    """The event-time column of the stream on each channel this task writes, by channel key."""
    columns: dict[tuple[int, int, int], str | None] = {}
    for edge in vertex.outputs:
        column = vertex.nodes[edge.position].event_time.get(edge.output)
        downstream = plan.vertices[edge.downstream]
        for target in range(downstream.parallelism):
            channels = plan.channels_into(downstream, target)
            if (edge.downstream_input, subtask) in channels:
                columns[(edge.downstream, target, channels.index((edge.downstream_input, subtask)))] = column
    return columns


def _wait_one(refs: list[ray.ObjectRef]) -> tuple[list[ray.ObjectRef], list[ray.ObjectRef]]:
    return ray.wait(refs, num_returns=1, fetch_local=False)


class _RayMetrics:
    """Pushes a task's counters to Ray's metrics API, which Ray serves to Prometheus."""

    def __init__(self, job: str, task: str) -> None:
        self.tags = {"job": job, "task": task}
        keys = ("job", "task")
        op_keys = ("job", "task", "operator")
        self.rows_in = ray_metrics.Counter("citystream_task_rows_in", "rows into the task", keys)
        self.batches_in = ray_metrics.Counter("citystream_task_batches_in", "batches into the task", keys)
        self.frames_out = ray_metrics.Counter("citystream_task_frames_out", "frames the task sent", keys)
        self.backpressure = ray_metrics.Counter("citystream_task_backpressure_seconds", "time the task waited for credits", keys)
        self.watermark_lag = ray_metrics.Gauge("citystream_task_watermark_lag_ms", "processing time minus watermark", keys)
        self.hop_latency = ray_metrics.Histogram(
            "citystream_task_hop_latency_ms",
            "time from the upstream task sending a frame to this task receiving it",
            [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000],
            keys,
        )
        self.op_rows_in = ray_metrics.Counter("citystream_operator_rows_in", "rows into the operator", op_keys)
        self.op_rows_out = ray_metrics.Counter("citystream_operator_rows_out", "rows out of the operator", op_keys)
        self._last: TaskMetrics = TaskMetrics()
        self._latencies_seen = 0

    def export(self, now: TaskMetrics, latencies_total: int) -> None:
        last = self._last
        self._inc(self.rows_in, now.rows_in - last.rows_in, self.tags)
        self._inc(self.batches_in, now.batches_in - last.batches_in, self.tags)
        self._inc(self.frames_out, now.frames_out - last.frames_out, self.tags)
        self._inc(self.backpressure, now.backpressure_s - last.backpressure_s, self.tags)
        lag = now.watermark_lag_ms(time.time_ns() // 1_000_000)
        if lag is not None:
            self.watermark_lag.set(lag, self.tags)
        fresh = min(latencies_total - self._latencies_seen, len(now.hop_latency_ms))
        for value in now.hop_latency_ms[len(now.hop_latency_ms) - fresh :]:
            self.hop_latency.observe(value, self.tags)
        self._latencies_seen = latencies_total
        for name, op in now.operators.items():
            before = last.operators.get(name)
            tags = {**self.tags, "operator": name}
            self._inc(self.op_rows_in, op.rows_in - (before.rows_in if before else 0), tags)
            self._inc(self.op_rows_out, op.rows_out - (before.rows_out if before else 0), tags)
        self._last = now

    @staticmethod
    def _inc(counter: ray_metrics.Counter, delta: float, tags: dict[str, str]) -> None:
        if delta > 0:
            counter.inc(delta, tags)


@dataclass(frozen=True)
class _TaskCheckpointing:
    """A task actor's part in checkpoints: whom to report to, where to write, what to restore."""

    coordinator: ActorHandle
    storage: CheckpointStorage
    key: str
    restore_id: int | None
    restore_entry: dict[str, Any] | None
    max_held_rows: int


@ray.remote(concurrency_groups={"data": 1, "source": 1, "control": 4})  # type: ignore[call-overload]
class TaskActor:
    """Hosts one task. Frames arrive through ``push`` (in sequence order per channel); a source
    task runs its loop in ``run_source``; a ticker thread sends lingering frames and ticks the
    task; ``wait_done``, ``stop`` and ``metrics`` serve the coordinator.

    With checkpoints, a snapshot is encoded on the task's thread and written by a thread of its
    own, which then reports to the coordinator. What arrives on a channel blocked for alignment
    is held by the task (bounded: ``CheckpointOptions.max_held_rows``, past which the task gives
    the checkpoint up rather than its memory).
    """

    def __init__(
        self,
        job: str,
        plan: PhysicalPlan,
        vertex_id: int,
        subtask: int,
        options: ChannelOptions,
        checkpointing: _TaskCheckpointing | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._checkpointing = checkpointing
        self._triggers: deque[int] = deque()  # checkpoints the source loop is to take
        self._snapshots: queue.SimpleQueue[tuple[int, EncodedState] | None] = queue.SimpleQueue()
        self._done = threading.Event()
        self._wake = threading.Event()
        self._stopping = False
        self._outcome: TaskOutcome | None = None
        self._outbox = _Outbox(options, self._wake)
        vertex = plan.vertices[vertex_id]
        self._name = vertex.task_name(subtask)
        self._hop_latency: deque[float] = deque(maxlen=LATENCY_SAMPLE)
        self._batch_latency: deque[float] = deque(maxlen=LATENCY_SAMPLE)
        self._latencies_total = 0
        self._exporter = _RayMetrics(job, self._name)
        channels = len(plan.channels_into(vertex, subtask))
        self._reorder: ReorderBuffer[tuple[int, list[pa.RecordBatch], bytes]] = ReorderBuffer(channels)
        try:
            self._task = Task(plan, vertex, subtask, self._outbox)
            if checkpointing is not None:
                if checkpointing.restore_id is not None and checkpointing.restore_entry is not None:
                    state = checkpointing.storage.read_task(checkpointing.restore_id, checkpointing.restore_entry)
                    self._task.restore(state)
                self._task.snapshot_listener = lambda checkpoint_id, encoded: self._snapshots.put((checkpoint_id, encoded))
                self._task.max_held_rows = checkpointing.max_held_rows
                self._task.give_up_listener = lambda checkpoint_id, why: checkpointing.coordinator.report.remote(
                    checkpoint_id, None, f"task {self._name}: {why}"
                )
                threading.Thread(target=self._write_snapshots, name=f"snapshots {self._name}", daemon=True).start()
        except Exception as exc:
            # Reported through wait_done like any other failure of the task, with the
            # operator's own exception (a failed actor constructor would only say "died").
            self._fail(exc)
            return
        self._outbox.event_times = _event_times_of_outputs(plan, vertex, subtask)

    @ray.method(concurrency_group="control")
    def connect(self, peers: dict[tuple[int, int], ActorHandle]) -> dict[str, Any]:
        """Gives the task the handles of the tasks it sends to and starts its ticker."""
        self._outbox.peers = peers
        if not self._done.is_set():
            threading.Thread(target=self._tick_loop, name=f"ticker {self._name}", daemon=True).start()
        context = ray.get_runtime_context()
        return {"pid": os.getpid(), "node": context.get_node_id(), "placement_group": context.get_placement_group_id()}

    # ---- data -----------------------------------------------------------------------------

    @ray.method(concurrency_group="data")
    def push(self, channel: int, seq: int, sent_ns: int, batches: list[pa.RecordBatch], control: bytes) -> None:
        """Receives one frame; returning is the acknowledgement (a credit back to the sender)."""
        received_ns = time.time_ns()
        if self._done.is_set() or self._task.restored_finished:
            return  # failing, cancelled, or restored ended (it ends its outputs, it takes no input)
        with self._lock:
            try:
                self._hop_latency.append((received_ns - sent_ns) / 1e6)
                self._latencies_total += 1
                for ready in self._reorder.arrive(channel, seq, (sent_ns, batches, control)):
                    self._process(channel, ready[1], ready[2])
                self._after_step()
            except BaseException as exc:
                self._fail(exc)

    def _process(self, channel: int, batches: list[pa.RecordBatch], control: bytes) -> None:
        started = time.perf_counter()
        self._task.metrics.frames_in += 1
        for message in decode_frame(batches, control):
            self._task.handle(channel, message, time.monotonic())
        self._batch_latency.append((time.perf_counter() - started) * 1000)

    @ray.method(concurrency_group="control")
    def end_if_restored_ended(self) -> None:
        """A task restored from a checkpoint taken after it had ended only ends its outputs
        again; called once every task of the job is connected, so that its peers can take it."""
        with self._lock:
            if not self._done.is_set() and self._task.restored_finished:
                try:
                    self._task.end_restored()
                    self._after_step()
                except BaseException as exc:
                    self._fail(exc)

    @ray.method(concurrency_group="source")
    def run_source(self) -> None:
        """The loop of a source task: poll, send, until the input ends or the job stops."""
        try:
            while not self._done.is_set():
                with self._lock:
                    while self._triggers:
                        self._take_checkpoint(self._triggers.popleft())
                    if self._stopping and not self._task.finished:
                        self._task.finish()
                    progressed = False if self._task.finished else self._task.poll_source()
                    self._after_step()
                if not progressed and not self._done.is_set():
                    time.sleep(0.001)
        except BaseException as exc:
            with self._lock:
                self._fail(exc)

    def _after_step(self) -> None:
        if self._outbox.options.linger_ms == 0:
            for writer in self._outbox.writers.values():
                writer.flush()
        else:
            self._outbox.flush_due(time.monotonic())
        if self._task.finished and not self._done.is_set():
            self._snapshots.put(None)  # the writer ends once it has written what it has
            self._outbox.drain()
            final = self._task.final_state() if self._checkpointing is not None else None
            self._outcome = TaskOutcome(
                self._name, self._task.results(), self._metrics(), final_state=final, last_checkpoint=self._task.last_checkpoint
            )
            self._done.set()

    def _tick_loop(self) -> None:
        next_tick = time.monotonic()
        next_export = next_tick + EXPORT_S
        while not self._done.is_set():
            deadline = min(next_tick, self._outbox.next_deadline() or next_tick)
            self._wake.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._wake.clear()
            with self._lock:
                if self._done.is_set():
                    break
                now = time.monotonic()
                try:
                    if now >= next_tick:
                        self._task.tick(now)
                        next_tick = now + TICK_S
                    self._outbox.flush_due(now)
                    if now >= next_export:
                        self._exporter.export(self._metrics(), self._latencies_total)
                        next_export = now + EXPORT_S
                    self._after_step()
                except BaseException as exc:
                    self._fail(exc)
        if self._outcome is not None and self._outcome.error is None:
            self._exporter.export(self._outcome.metrics, self._latencies_total)

    def _write_snapshots(self) -> None:
        """Writes each snapshot the task took, in order, and reports it to the coordinator."""
        checkpointing = self._checkpointing
        assert checkpointing is not None
        while True:
            item = self._snapshots.get()
            if item is None:
                return
            checkpoint_id, encoded = item
            try:
                report = checkpointing.storage.write_task(checkpoint_id, checkpointing.key, self._name, encoded)
            except Exception as exc:
                logger.warning("task %s: checkpoint %d could not be written: %s", self._name, checkpoint_id, exc)
                checkpointing.coordinator.report.remote(checkpoint_id, None, f"task {self._name} could not write: {exc}")
                continue
            checkpointing.coordinator.report.remote(checkpoint_id, report)

    @ray.method(concurrency_group="control")
    def trigger_checkpoint(self, checkpoint_id: int) -> None:
        """Asks a source task to snapshot and send the barrier on. The source's own loop does
        it before its next poll: waiting here for the lock the loop takes back at once could
        take hundreds of milliseconds, while downstream tasks hold the inputs whose barrier came."""
        self._triggers.append(checkpoint_id)
        if self._done.is_set():  # the loop has ended: the final state stands for the task
            self._decline(checkpoint_id)

    def _take_checkpoint(self, checkpoint_id: int) -> None:
        """In the source loop, holding the lock."""
        try:
            taken = not self._stopping and self._task.trigger_checkpoint(checkpoint_id)
        except BaseException as exc:  # a source that cannot snapshot fails, and the job recovers or fails
            self._fail(exc)
            return
        if not taken:
            self._decline(checkpoint_id)

    def _decline(self, checkpoint_id: int) -> None:
        checkpointing = self._checkpointing
        assert checkpointing is not None
        checkpointing.coordinator.report.remote(checkpoint_id, None, f"source task {self._name} has ended", ended=True)

    @ray.method(concurrency_group="control")
    def commit(self, checkpoint_id: int, oldest_kept: int | None = None) -> None:
        """Checkpoint ``checkpoint_id`` completed everywhere: the operators' and source's commit hooks."""
        with self._lock:
            if not self._done.is_set():
                try:
                    self._task.commit(checkpoint_id, oldest_kept)
                except BaseException as exc:
                    self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._done.is_set():
            return
        logger.error("task %s failed", self._name, exc_info=exc)
        try:
            pickle.dumps(exc)
            error: BaseException = exc
        except Exception:
            error = CitystreamError(f"{type(exc).__name__}: {exc}")
        metrics = self._metrics() if hasattr(self, "_task") else TaskMetrics()
        self._outcome = TaskOutcome(self._name, {}, metrics, error, traceback.format_exc())
        self._done.set()

    def _metrics(self) -> TaskMetrics:
        metrics = copy.deepcopy(self._task.metrics)
        stats = [w.stats for w in self._outbox.writers.values()]
        metrics.frames_out = sum(s.frames for s in stats)
        metrics.backpressure_s = sum(s.credit_wait_s for s in stats)
        metrics.max_in_flight = max((s.max_in_flight for s in stats), default=0)
        metrics.hop_latency_ms = list(self._hop_latency)
        metrics.batch_latency_ms = list(self._batch_latency)
        return metrics

    # ---- control --------------------------------------------------------------------------

    @ray.method(concurrency_group="control")
    def wait_done(self) -> TaskOutcome:
        """Returns when the task has ended (its input ended, it failed, or it was stopped)."""
        self._done.wait()
        assert self._outcome is not None
        return self._outcome

    @ray.method(concurrency_group="control")
    def stop(self) -> None:
        """Asks a source task to end its input now; the rest of the job drains and ends."""
        self._stopping = True

    @ray.method(concurrency_group="control")
    def results(self) -> dict[str, Any]:
        """What the task's sinks hold now (the job keeps running)."""
        if self._outcome is not None:
            return self._outcome.results
        with self._lock:
            return self._task.results()

    @ray.method(concurrency_group="control")
    def metrics(self) -> TaskMetrics:
        if self._outcome is not None:
            return self._outcome.metrics
        with self._lock:
            return self._metrics()


@dataclass
class _Member:
    name: str
    vertex: Vertex
    subtask: int
    actor: ActorHandle
    actor_name: str = ""
    pid: int = 0
    node: str = ""
    group: str | None = None  # the placement group's id, for a task in a bundle


@dataclass(frozen=True)
class _JobSpec:
    """What the coordinator needs to create and re-create a job's task actors."""

    plan: PhysicalPlan
    namespace: str
    channels: ChannelOptions
    actor_options: dict[int, dict[str, Any]]  # vertex id -> Ray actor options
    start_timeout_s: float
    checkpoints: CheckpointOptions | None
    bundles: dict[tuple[int, int], int] = field(default_factory=dict)  # (vertex id, subtask) -> bundle
    group: PlacementGroup | None = None  # of the bundles (Colocation)


@dataclass
class _Verdict:
    """How the job stands, as the coordinator sees it."""

    state: Literal["running", "finished", "failed", "cancelled"]
    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)
    task: str = ""
    error: BaseException | None = None
    traceback: str = ""
    recoveries: list[str] = field(default_factory=list)
    checkpoints: CheckpointStats | None = None


@dataclass
class RecoveryRecord:
    """One automatic recovery: why, from which checkpoint, and how long until tasks ran again."""

    reason: str
    checkpoint_id: int | None
    failed_at: float  # wall clock (s)
    running_at: float  # wall clock (s) when every task of the new generation had started


@ray.remote(concurrency_groups={"control": 4, "reports": 1, "wait": 4})  # type: ignore[call-overload]
class JobCoordinator:
    """Runs one job: creates its task actors, watches them, starts checkpoints at an interval,
    completes them when every task has reported, and recovers from a failed task or a lost
    node by restarting every task from the last complete checkpoint (a bounded number of times).

    Task actors are created by this actor, so they share its fate: if the coordinator dies, the
    job dies with it.
    """

    def __init__(self, spec: _JobSpec) -> None:
        self.spec = spec
        self.plan = spec.plan
        self._lock = threading.RLock()
        self._ended = threading.Event()
        self._verdict = _Verdict("running")
        self._members: list[_Member] = []
        self._pending: dict[ray.ObjectRef, _Member] = {}
        self._outcomes: dict[str, TaskOutcome] = {}
        self._generation = 0
        self._stopping = False
        self._final_savepoint = False  # the job ends after it: no periodic checkpoint after it
        self.recoveries: list[RecoveryRecord] = []
        self._checkpoints: CheckpointCoordinator | None = None
        self._storage: CheckpointStorage | None = None
        self._group: PlacementGroup | None = spec.group  # placed by RayJob.start; removed at the end
        if spec.checkpoints is not None:
            self._storage = CheckpointStorage(spec.checkpoints.directory, self.plan.job)
            self._checkpoints = CheckpointCoordinator(self._storage, self.plan, spec.checkpoints)
        self._self: ActorHandle | None = None

    # ---- starting -------------------------------------------------------------------------

    @ray.method(concurrency_group="control")
    def start(self) -> dict[str, dict[str, Any]]:
        """Creates and connects every task actor (restored from the latest checkpoint if the
        options say so) and starts the sources; returns the tasks' placement."""
        self._self = ray.get_runtime_context().current_actor
        restore: Checkpoint | None = None
        if self._checkpoints is not None and self.spec.checkpoints is not None and self.spec.checkpoints.restore:
            restore = self._checkpoints.restorable()
            if restore is None:
                raise restore_error(self.plan.job, self.spec.checkpoints.directory)
            logger.info("job %s: restoring from checkpoint %d", self.plan.job, restore.checkpoint_id)
        self._launch(restore)
        threading.Thread(target=self._watch, name=f"coordinator {self.plan.job}", daemon=True).start()
        return self._placement()

    def _remove_group(self) -> None:
        _remove_group(self._group)
        self._group = None

    def _group_placed_again(self) -> None:
        """After a lost node Ray places its bundles again on the other nodes, if they have the
        room; if they do not, the tasks go where Ray's scheduler puts them rather than wait."""
        if self._group is None:
            return
        wait_s = min(30.0, self.spec.start_timeout_s)
        try:
            ray.get(self._group.ready(), timeout=wait_s)
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError):
            logger.warning(
                "job %s: the placement group's bundles could not be placed again within %g s (a node lost, and no "
                "room for its bundles on the others); the tasks are placed without it",
                self.plan.job,
                wait_s,
            )
            self._remove_group()

    def _task_options(self, vertex: Vertex, subtask: int) -> dict[str, Any]:
        """Ray options of one task's actor: its vertex's, in its bundle if it has one."""
        options = dict(self.spec.actor_options[vertex.id])
        bundle = self.spec.bundles.get((vertex.id, subtask))
        if bundle is not None and self._group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self._group, placement_group_bundle_index=bundle, placement_group_capture_child_tasks=False
            )
            # The bundle holds the reservation; without a CPU figure of its own the actor would
            # need a whole free CPU in the bundle just to be placed (Ray's default for actors).
            options.setdefault("num_cpus", 0)
        return options

    def _launch(self, restore: Checkpoint | None) -> None:
        """Creates one actor per task, connects them and starts the sources (raises on failure)."""
        spec = self.spec
        plan_ref = ray.put(self.plan)
        members = []
        for vertex in self.plan.vertices:
            for subtask in range(vertex.parallelism):
                name = vertex.task_name(subtask)
                actor_name = name if self._generation == 0 else f"{name}#{self._generation}"
                checkpointing = None
                if self._storage is not None and self._self is not None:
                    key = task_key(vertex.id, subtask)
                    entry = restore.manifest["tasks"][key] if restore is not None else None
                    assert spec.checkpoints is not None
                    checkpointing = _TaskCheckpointing(
                        self._self,
                        self._storage,
                        key,
                        restore.checkpoint_id if restore else None,
                        entry,
                        spec.checkpoints.max_held_rows,
                    )
                actor = TaskActor.options(  # type: ignore[attr-defined]
                    name=actor_name,
                    namespace=spec.namespace,
                    max_restarts=0,
                    **self._task_options(vertex, subtask),
                ).remote(self.plan.job, plan_ref, vertex.id, subtask, spec.channels, checkpointing)
                members.append(_Member(name, vertex, subtask, actor, actor_name))
        self._members = members
        self._outcomes = {}
        peers = {(m.vertex.id, m.subtask): m.actor for m in members}
        connecting: dict[ray.ObjectRef, _Member] = {m.actor.connect.remote(peers): m for m in members}
        deadline = time.monotonic() + spec.start_timeout_s
        while connecting:
            ready, _ = ray.wait(list(connecting), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                waiting = sorted(m.name for m in connecting.values())
                options = {m.name: self._task_options(m.vertex, m.subtask) for m in connecting.values()}
                self._release()
                raise CitystreamError(
                    f"job '{self.plan.job}': tasks {waiting} did not start within {spec.start_timeout_s} s; "
                    f"does the cluster have what they ask for? {options}; it has {ray.available_resources()}"
                )
            ref: ray.ObjectRef = ready[0]
            member = connecting.pop(ref)
            try:
                info = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self._release()
                raise JobFailed(
                    member.name, CitystreamError(f"the actor of the task could not start: {_actor_death(exc)}")
                ) from exc
            member.pid, member.node, member.group = info["pid"], info["node"], info["placement_group"]
        if restore is not None:
            ray.get([m.actor.end_if_restored_ended.remote() for m in members])
        self._pending = {m.actor.wait_done.remote(): m for m in members}
        for member in members:
            if member.vertex.is_source:
                member.actor.run_source.remote()
        logger.info(
            "job %s: %d tasks started in namespace %s (generation %d)",
            self.plan.job,
            len(members),
            spec.namespace,
            self._generation,
        )

    # ---- watching -------------------------------------------------------------------------

    def _watch(self) -> None:
        """Collects the tasks' ends, triggers checkpoints, recovers from failures."""
        while not self._ended.is_set():
            with self._lock:
                refs = list(self._pending)
            if refs:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=CHECK_S)
            else:
                time.sleep(CHECK_S)
                ready = []
            with self._lock:
                try:
                    for ref in ready:
                        member = self._pending.pop(ref, None)
                        if member is not None and not self._ended.is_set():
                            self._task_ended(member, ref)
                    if not self._ended.is_set():
                        self._maybe_checkpoint()
                except BaseException as exc:
                    # Whatever went wrong here, the job must end with it rather than hang.
                    logger.exception("job %s: the coordinator failed", self.plan.job)
                    self._release()
                    self._finish(_Verdict("failed", task="coordinator", error=exc, traceback=traceback.format_exc()))

    def _task_ended(self, member: _Member, ref: ray.ObjectRef) -> None:
        try:
            outcome: TaskOutcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self._failed(member, CitystreamError(f"the actor of the task died: {_actor_death(exc)}"), "")
            return
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            self._failed(member, cause, "")
            return
        if outcome.error is not None:
            self._failed(member, outcome.error, outcome.traceback)
            return
        self._outcomes[member.name] = outcome
        if len(self._outcomes) == len(self._members):
            self._finish(_Verdict("finished", dict(self._outcomes)))

    def _finish(self, verdict: _Verdict) -> None:
        self._remove_group()
        verdict.recoveries = [r.reason for r in self.recoveries]
        if self._checkpoints is not None:
            self._checkpoints.abort_all(f"the job {verdict.state} before it completed", expected=True)
            verdict.checkpoints = copy.deepcopy(self._checkpoints.stats)
        self._verdict = verdict
        self._ended.set()

    def _failed(self, member: _Member, error: BaseException, trace: str) -> None:
        options = self.spec.checkpoints
        reason = f"task '{member.name}' failed: {type(error).__name__}: {error}"
        if options is None or self._stopping or len(self.recoveries) >= options.max_restarts:
            self._release()
            self._finish(_Verdict("failed", task=member.name, error=error, traceback=trace))
            return
        self._recover(reason)

    def _recover(self, reason: str) -> None:
        """Stops every task, then starts them all again from the last complete checkpoint."""
        assert self._checkpoints is not None and self.spec.checkpoints is not None
        failed_at = time.time()
        self._checkpoints.abort_all("the job is recovering")
        probes: list[ray.ObjectRef] = [m.actor.metrics.remote() for m in self._members]  # fail once the actor is gone
        self._release()
        # Every old actor must be gone before new ones take their ports (gateways) and files.
        with contextlib.suppress(ray.exceptions.RayError):
            ray.wait(probes, num_returns=len(probes), timeout=30)
        restore = self._checkpoints.latest()
        attempt = len(self.recoveries) + 1
        logger.warning(
            "job %s: %s; recovering (%d of %d) from %s",
            self.plan.job,
            reason,
            attempt,
            self.spec.checkpoints.max_restarts,
            f"checkpoint {restore.checkpoint_id}" if restore else "the beginning (no checkpoint yet)",
        )
        self._generation += 1
        self._group_placed_again()
        try:
            self._launch(restore)
        except CitystreamError as exc:
            exc.add_note(f"while recovering from: {reason}")
            self._finish(_Verdict("failed", task=getattr(exc, "task", self.plan.job), error=exc))
            return
        self.recoveries.append(RecoveryRecord(reason, restore.checkpoint_id if restore else None, failed_at, time.time()))

    def _maybe_checkpoint(self) -> None:
        cp = self._checkpoints
        if cp is None or self._stopping:
            return
        cp.abort_expired()
        if cp.due() and not self._final_savepoint:
            self._trigger(cp.begin())
        self._acknowledge_finished()

    def _trigger(self, checkpoint_id: int) -> None:
        """Asks every source task still running to take the checkpoint."""
        for member in self._members:
            if member.vertex.is_source and member.name not in self._outcomes:
                member.actor.trigger_checkpoint.remote(checkpoint_id)

    def _acknowledge_finished(self) -> None:
        """Tasks that have ended see no more barriers: their final state stands for them."""
        cp, storage = self._checkpoints, self._storage
        assert cp is not None and storage is not None
        for member in self._members:
            outcome = self._outcomes.get(member.name)
            if outcome is None or outcome.final_state is None:
                continue
            key = task_key(member.vertex.id, member.subtask)
            for checkpoint_id in cp.owed_by_ended(key, outcome.last_checkpoint):
                try:
                    report = storage.write_task(checkpoint_id, key, member.name, outcome.final_state)
                except OSError as exc:
                    cp.abort(checkpoint_id, f"the final state of {member.name} could not be written: {exc}")
                    continue
                self._acknowledge(checkpoint_id, report)

    def _acknowledge(self, checkpoint_id: int, report: TaskReport) -> bool:
        """Records a report; on completion, commits on every task. True if the checkpoint is
        no longer pending (complete or given up)."""
        cp = self._checkpoints
        assert cp is not None
        try:
            completed = cp.acknowledge(checkpoint_id, report)
        except OSError as exc:
            cp.abort(checkpoint_id, f"the manifest could not be written: {exc}")
            return True
        if completed is not None:
            oldest_kept = cp.oldest_kept()
            for member in self._members:
                if member.name not in self._outcomes:
                    member.actor.commit.remote(completed.checkpoint_id, oldest_kept)
        return checkpoint_id not in cp.pending

    @ray.method(concurrency_group="reports")
    def report(self, checkpoint_id: int, report: TaskReport | None, problem: str = "", ended: bool = False) -> None:
        """A task's state for ``checkpoint_id`` is written (``report``), or it could not take
        part (``problem``; ``ended``: a source that had ended); completes or gives up the checkpoint."""
        with self._lock:
            cp = self._checkpoints
            if cp is None or checkpoint_id not in cp.pending:
                return
            if report is None:
                if not ended:
                    cp.abort(checkpoint_id, problem)
                # A source that ended as it was triggered: its final state stands for it
                # once its end is seen (_acknowledge_finished).
                return
            self._acknowledge(checkpoint_id, report)

    @ray.method(concurrency_group="control")
    def savepoint(self, timeout: float = 60.0, final: bool = False) -> int:
        """Takes a checkpoint now and returns its id once it is complete. ``final``: the job
        ends after it, so no periodic checkpoint starts after it (the savepoint stays the last
        one, the one a restore resumes from)."""
        cp = self._checkpoints
        if cp is None:
            raise CitystreamError(f"job '{self.plan.job}' runs without checkpoints: there is nothing to take a savepoint with")
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not cp.pending:
                    checkpoint_id = cp.begin()
                    self._trigger(checkpoint_id)
                    self._final_savepoint = final
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job '{self.plan.job}': a checkpoint is still running after {timeout} s")
            time.sleep(0.01)
        while time.monotonic() < deadline:
            with self._lock:
                if checkpoint_id not in cp.pending:
                    if checkpoint_id in cp.completed_ids:
                        return checkpoint_id
                    self._final_savepoint = False  # the job goes on: so do its checkpoints
                    raise CitystreamError(f"job '{self.plan.job}': the savepoint (checkpoint {checkpoint_id}) was given up")
            time.sleep(0.01)
        with self._lock:
            self._final_savepoint = False
        raise TimeoutError(f"job '{self.plan.job}': the savepoint (checkpoint {checkpoint_id}) took more than {timeout} s")

    # ---- ending ---------------------------------------------------------------------------

    def _release(self) -> None:
        for member in self._members:
            try:
                ray.kill(member.actor, no_restart=True)
            except Exception as exc:  # already gone
                logger.debug("killing %s: %s", member.name, exc)
        self._pending = {}

    @ray.method(concurrency_group="wait")
    def wait(self, timeout: float | None) -> _Verdict:
        """The verdict once the job has ended, or a ``running`` one after ``timeout`` seconds."""
        self._ended.wait(timeout)
        with self._lock:
            return self._verdict

    @ray.method(concurrency_group="control")
    def stop(self) -> None:
        """Asks the sources to end their input; the rest drains (no recovery from now on)."""
        with self._lock:
            self._stopping = True
            for member in self._members:
                if member.vertex.is_source:
                    member.actor.stop.remote()

    @ray.method(concurrency_group="control")
    def cancel(self) -> None:
        with self._lock:
            self._stopping = True
            self._release()
            if not self._ended.is_set():
                self._finish(_Verdict("cancelled"))

    # ---- looking in -----------------------------------------------------------------------

    @ray.method(concurrency_group="control")
    def tasks(self) -> dict[str, dict[str, Any]]:
        return self._placement()

    def _placement(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                m.name: {
                    "actor": m.actor_name,
                    "namespace": self.spec.namespace,
                    "pid": m.pid,
                    "node": m.node,
                    "placement_group": m.group,
                }
                for m in self._members
            }

    @ray.method(concurrency_group="control")
    def status(self) -> dict[str, Any]:
        """Recoveries and checkpoint figures."""
        with self._lock:
            stats = self._checkpoints.stats if self._checkpoints is not None else None
            return {
                "state": self._verdict.state,
                "generation": self._generation,
                "recoveries": list(self.recoveries),
                "checkpoints": copy.deepcopy(stats),
            }

    @ray.method(concurrency_group="control")
    def ask(self, what: Literal["results", "metrics"], sinks_only: bool, timeout: float) -> dict[str, Any]:
        """``what`` of each task by name: from its outcome if it ended, else asked of its actor
        (a task that does not answer in time is left out, with a warning)."""
        with self._lock:
            members = [m for m in self._members if not sinks_only or m.vertex.nodes[-1].is_sink]
            outcomes = dict(self._outcomes if self._verdict.state == "running" else self._verdict.outcomes)
            running = not self._ended.is_set()
        answers: dict[str, Any] = {}
        asked: dict[str, ray.ObjectRef] = {}
        for member in members:
            if member.name in outcomes:
                answers[member.name] = getattr(outcomes[member.name], what)
            elif running:
                asked[member.name] = getattr(member.actor, what).remote()
        for name, ref in asked.items():
            try:
                answers[name] = ray.get(ref, timeout=timeout)
            except (ray.exceptions.RayError, TimeoutError) as exc:
                logger.warning("no %s from %s: %s", what, name, exc)
        return {m.name: answers[m.name] for m in members if m.name in answers}


def _place_group(
    job: str, namespace: str, colocation: Colocation, bundles: dict[tuple[int, int], int], timeout_s: float
) -> PlacementGroup:
    """The job's placement group (``Colocation``), once Ray has placed every bundle."""
    count = 1 + max(bundles.values())  # the anchor's tasks: bundles 0 .. n-1
    bundle = dict(colocation.bundle)
    group = placement_group([bundle for _ in range(count)], strategy=colocation.strategy, name=f"{namespace}.tasks")
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        raise CitystreamError(
            f"job '{job}': Ray could not place the {count} bundles of {dict(colocation.bundle)} for the tasks of "
            f"'{colocation.anchor}' (strategy {colocation.strategy}) within {timeout_s} s; the cluster's nodes have {nodes}"
            + ("; STRICT_SPREAD needs a node for each bundle" if colocation.strategy == "STRICT_SPREAD" else "")
        ) from None
    return group


def _remove_group(group: PlacementGroup | None) -> None:
    if group is not None:
        with contextlib.suppress(Exception):  # already removed
            remove_placement_group(group)


class RayJob:
    """A job running on Ray: a coordinator actor and, created by it, a named actor per task in
    the job's namespace.

    Use ``RayExecutor.submit`` to get one; ``wait`` returns the result, ``stop`` ends it
    gracefully (sources stop, what is in flight drains, end-of-stream reaches the sinks),
    ``cancel`` kills it. With checkpoints, a failed task or a lost node makes the coordinator
    restart every task from the last complete checkpoint (``recoveries`` lists them).
    """

    def __init__(self, plan: PhysicalPlan, executor: RayExecutor) -> None:
        self.plan = plan
        self.namespace = f"citystream.{plan.job}.{uuid.uuid4().hex[:8]}"
        self.state: Literal["created", "running", "finished", "failed", "cancelled"] = "created"
        self._executor = executor
        self._coordinator: ActorHandle | None = None
        self._tasks: dict[str, dict[str, Any]] = {}
        self._result: JobResult | None = None
        self._group: PlacementGroup | None = None

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """Each task's actor name, namespace, process id, node and placement group (None
        outside one), as of now: a recovery replaces the actors."""
        if self._coordinator is not None and self.state == "running":
            with contextlib.suppress(ray.exceptions.RayError):
                self._tasks = dict(ray.get(self._coordinator.tasks.remote(), timeout=10))
        return self._tasks

    @property
    def coordinator(self) -> ActorHandle:
        assert self._coordinator is not None, "start the job first"
        return self._coordinator

    def start(self) -> RayJob:
        """Creates the coordinator, which creates the task actors, connects them and starts the sources."""
        if self.state != "created":
            raise CitystreamError(f"job '{self.plan.job}' was already started")
        self.state = "running"
        executor = self._executor
        bundles: dict[tuple[int, int], int] = {}
        if executor.colocation is not None:
            bundles = executor.colocation.bundles_of(self.plan)
            # Placed here, by the driver, so that the group goes with the driver whatever happens
            # to the coordinator (which removes it at the end of the job, as ``cancel`` does).
            self._group = _place_group(self.plan.job, self.namespace, executor.colocation, bundles, executor.start_timeout_s)
        spec = _JobSpec(
            self.plan,
            self.namespace,
            executor.channels,
            {v.id: executor.actor_options_for(v).ray_options() for v in self.plan.vertices},
            executor.start_timeout_s,
            executor.checkpoints,
            bundles,
            self._group,
        )
        options = dict(executor.coordinator_options)
        # Next to the driver (on a cluster, the head node) unless told otherwise: the task actors
        # share the coordinator's fate, so it should not sit on a worker node that may be lost.
        options.setdefault(
            "scheduling_strategy",
            NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False),
        )
        coordinator = JobCoordinator.options(  # type: ignore[attr-defined]
            name="coordinator", namespace=self.namespace, num_cpus=0, max_restarts=0, **options
        ).remote(spec)
        self._coordinator = coordinator
        try:
            self._tasks = ray.get(coordinator.start.remote())
        except ray.exceptions.RayTaskError as exc:
            self.state = "failed"
            self._kill_coordinator()
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            raise cause from None
        return self

    def wait(self, timeout: float | None = None) -> JobResult:
        """Waits until every task has ended and returns the job's result.

        Raises:
            JobFailed: a task raised or its actor died (and no recovery was left); every actor
                of the job has been stopped.
            TimeoutError: the job is still running after ``timeout`` seconds (it keeps running).
        """
        if self.state == "created":
            raise CitystreamError(f"job '{self.plan.job}' was not started")
        if self._result is not None:
            return self._result
        try:
            verdict = cast(_Verdict, ray.get(self.coordinator.wait.remote(timeout)))
        except ray.exceptions.RayActorError as exc:
            self.state = "failed"
            raise JobFailed("coordinator", CitystreamError(f"the job's coordinator died: {_actor_death(exc)}")) from exc
        if verdict.state == "running":
            raise TimeoutError(f"job '{self.plan.job}' still running after {timeout} s")
        self._kill_coordinator()
        if verdict.state == "failed":
            self.state = "failed"
            assert verdict.error is not None
            error = verdict.error if isinstance(verdict.error, JobFailed) else JobFailed(verdict.task, verdict.error)
            if verdict.traceback:
                error.add_note(f"in the actor of task '{verdict.task}':\n{verdict.traceback}")
            raise error
        if verdict.state == "cancelled":
            self.state = "cancelled"
            raise CitystreamError(f"job '{self.plan.job}' was cancelled")
        self.state = "finished"
        self._result = _job_result(self.plan, verdict.outcomes)
        self._result.recoveries = verdict.recoveries
        self._result.checkpoints = verdict.checkpoints
        return self._result

    def stop(self, timeout: float | None = None) -> JobResult:
        """Stops the sources; what is in flight drains and the sinks see the end of the stream."""
        self.coordinator.stop.remote()
        return self.wait(timeout)

    def savepoint(self, timeout: float = 60.0, final: bool = False) -> int:
        """Takes a checkpoint now; returns its id once complete (``restore`` resumes from it).
        ``final``: no periodic checkpoint follows it (the job is about to end)."""
        return cast(int, ray.get(self.coordinator.savepoint.remote(timeout, final)))

    def stop_with_savepoint(self, timeout: float = 60.0) -> tuple[int, JobResult]:
        """Takes a savepoint, then ends the job without draining: open windows stay in the
        savepoint and fire when the job is restored from it (``CheckpointOptions(restore=True)``).
        Returns the savepoint's id and what the sinks and tasks held at the end."""
        checkpoint_id = self.savepoint(timeout, final=True)
        result = JobResult(self.plan.job, outputs=self.peek(), metrics=self.metrics())
        status = self.status()
        result.recoveries = [r.reason for r in status["recoveries"]]
        result.checkpoints = status["checkpoints"]
        self.cancel()
        return checkpoint_id, result

    def cancel(self) -> None:
        """Kills every actor of the job now; nothing is drained."""
        if self._coordinator is not None:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(self._coordinator.cancel.remote(), timeout=30)
        self._kill_coordinator()
        if self.state == "running":
            self.state = "cancelled"

    def _kill_coordinator(self) -> None:
        if self._coordinator is not None:
            with contextlib.suppress(Exception):
                ray.kill(self._coordinator, no_restart=True)
        _remove_group(self._group)
        self._group = None

    @property
    def recoveries(self) -> list[RecoveryRecord]:
        """The automatic recoveries so far."""
        return list(self.status()["recoveries"])

    def status(self) -> dict[str, Any]:
        """The coordinator's view: state, generation of the task actors, recoveries, checkpoints."""
        return dict(ray.get(self.coordinator.status.remote(), timeout=30))

    def peek(self, timeout: float = 10.0) -> dict[str, list[Any]]:
        """What each sink holds now, per task, while the job runs (as ``JobResult.outputs``)."""
        if self._result is not None:  # ended: what the sinks held at the end
            return {sink: list(values) for sink, values in self._result.outputs.items()}
        outputs: dict[str, list[Any]] = {}
        for results in self._ask("results", True, timeout).values():
            for sink, value in results.items():
                outputs.setdefault(sink, []).append(value)
        return outputs

    def metrics(self, timeout: float = 10.0) -> dict[str, TaskMetrics]:
        """Each task's metrics now (or at its end), by task name."""
        return self._ask("metrics", False, timeout)

    def _ask(self, what: Literal["results", "metrics"], sinks_only: bool, timeout: float) -> dict[str, Any]:
        if self._result is not None and what == "metrics":
            return dict(self._result.metrics)
        if self._coordinator is None or self.state != "running":
            return {}
        try:
            return dict(ray.get(self._coordinator.ask.remote(what, sinks_only, timeout), timeout=timeout + 30))
        except ray.exceptions.RayError as exc:
            logger.warning("no %s from the job's coordinator: %s", what, exc)
            return {}


def _job_result(plan: PhysicalPlan, outcomes: dict[str, TaskOutcome]) -> JobResult:
    result = JobResult(plan.job)
    for vertex in plan.vertices:
        for subtask in range(vertex.parallelism):
            outcome = outcomes[vertex.task_name(subtask)]
            result.metrics[outcome.task] = outcome.metrics
            for sink, value in outcome.results.items():
                result.outputs.setdefault(sink, []).append(value)
    return result


def _actor_death(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RayExecutor(Executor):
    """Runs each task of a plan as a Ray actor.

    Args:
        address: a Ray cluster to connect to; None uses the Ray instance this process already
            has, or starts a local one (``ray.init()``), which ``shutdown`` stops.
        channels: credits, frame size and linger of every channel of the job.
        actors: actor options of every task (CPUs, memory, resources, scheduling strategy).
        placement: per-operator overrides of ``actors``, by the name of an operator of the
            vertex (the first operator of a chain that is named here wins).
        init_options: extra keyword arguments for ``ray.init``.
        start_timeout_s: how long the actors may take to start before the job fails.
        checkpoints: checkpoint interval, storage and recovery; None: no checkpoints, and a
            failed task fails the job.
        coordinator: Ray actor options of the job's coordinator (it reserves no CPU).
        colocation: tasks placed in a placement group of the job: an operator's tasks spread
            (or packed) over the nodes, others next to them (``Colocation``); None: each actor
            where its options and Ray's scheduler put it.

    Example:
        >>> from engine import Dataflow, RayExecutor
        >>> executor = RayExecutor(channels=ChannelOptions(credits=4, linger_ms=1))  # doctest: +SKIP
        >>> result = executor.run(flow)  # doctest: +SKIP
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        channels: ChannelOptions | None = None,
        actors: ActorOptions | None = None,
        placement: Mapping[str, ActorOptions] | None = None,
        init_options: Mapping[str, Any] | None = None,
        start_timeout_s: float = 120.0,
        checkpoints: CheckpointOptions | None = None,
        coordinator: Mapping[str, Any] | None = None,
        colocation: Colocation | None = None,
    ) -> None:
        self.address = address
        self.colocation = colocation
        self.checkpoints = checkpoints
        self.coordinator_options = dict(coordinator or {})
        self.channels = channels or ChannelOptions()
        self.actors = actors or ActorOptions()
        self.placement = dict(placement or {})
        self.init_options = dict(init_options or {})
        self.start_timeout_s = start_timeout_s
        self._started_ray = False

    def actor_options_for(self, vertex: Vertex) -> ActorOptions:
        for node in vertex.nodes:
            if node.name in self.placement:
                return self.placement[node.name]
        return self.actors

    def connect(self) -> None:
        """Joins the Ray instance: the given cluster, the running one, or a new local one."""
        if ray.is_initialized():
            return
        if self.address is None:
            # Local runs only: a cluster keeps its token authentication.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=self.address, **self.init_options)
        self._started_ray = True

    def submit(self, flow: Dataflow | PhysicalPlan) -> RayJob:
        """Starts the job and returns its handle at once."""
        plan = self.plan_of(flow)
        if self.checkpoints is not None:
            check_replayable(plan)
        self.connect()
        job = RayJob(plan, self)
        try:
            return job.start()
        except BaseException:
            job.cancel()
            raise

    def run(self, flow: Dataflow | PhysicalPlan, timeout: float | None = None) -> JobResult:
        job = self.submit(flow)
        try:
            return job.wait(timeout)
        except BaseException:
            job.cancel()
            raise

    def shutdown(self) -> None:
        """Stops the local Ray instance if this executor started it."""
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayExecutor:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
