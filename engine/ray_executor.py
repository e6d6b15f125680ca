"""The Ray executor: every task of a plan runs in its own Ray actor, and channels are actor
calls that carry frames (Arrow batches plus msgpack control) under credit-based backpressure.

The task logic is ``engine.task.Task``, as in the inline executor; this module only hosts tasks
in actors and carries their channels (``engine.channels``). It is the only module of the engine
that imports Ray.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import ray
import ray.util.metrics as ray_metrics
from ray.actor import ActorHandle

from engine.channels import ChannelOptions, ChannelWriter, ReorderBuffer, decode_frame
from engine.dataflow import Dataflow
from engine.errors import CitystreamError, JobFailed, OptionError
from engine.executor import Executor, JobResult
from engine.plan import PhysicalPlan, Vertex
from engine.task import Message, Task, TaskMetrics

logger = logging.getLogger(__name__)

LATENCY_SAMPLE = 2048  # latencies each task keeps for percentiles
TICK_S = 0.05  # processing-time tick of every task (idle inputs, operators' timers)
EXPORT_S = 1.0  # how often a task pushes its counters to Ray's metrics


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


@dataclass
class TaskOutcome:
    """What a task actor reports when it ends: its sinks' results, or the error that stopped it."""

    task: str
    results: dict[str, Any]
    metrics: TaskMetrics
    error: BaseException | None = None
    traceback: str = ""


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
        self.backpressure = ray_metrics.Counter(
            "citystream_task_backpressure_seconds", "time the task waited for credits", keys
        )
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


@ray.remote(concurrency_groups={"data": 1, "source": 1, "control": 3})  # type: ignore[call-overload]
class TaskActor:
    """Hosts one task. Frames arrive through ``push`` (one thread, in sequence order per
    channel); a source task runs its loop in ``run_source``; a ticker thread sends lingering
    frames and ticks the task; ``wait_done``, ``stop`` and ``metrics`` serve the job handle.
    """

    def __init__(self, job: str, plan: PhysicalPlan, vertex_id: int, subtask: int, options: ChannelOptions) -> None:
        self._lock = threading.Lock()
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
        return {"pid": os.getpid(), "node": context.get_node_id()}

    # ---- data -----------------------------------------------------------------------------

    @ray.method(concurrency_group="data")
    def push(self, channel: int, seq: int, sent_ns: int, batches: list[pa.RecordBatch], control: bytes) -> None:
        """Receives one frame; returning is the acknowledgement (a credit back to the sender)."""
        received_ns = time.time_ns()
        if self._done.is_set():
            return  # the job is failing or cancelled; the handle stops every actor
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

    @ray.method(concurrency_group="source")
    def run_source(self) -> None:
        """The loop of a source task: poll, send, until the input ends or the job stops."""
        try:
            while not self._done.is_set():
                with self._lock:
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
            self._outbox.drain()
            self._outcome = TaskOutcome(self._name, self._task.results(), self._metrics())
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
    pid: int = 0
    node: str = ""


class RayJob:
    """A job running on Ray: each task is a named actor in the job's namespace.

    Use ``RayExecutor.submit`` to get one; ``wait`` returns the result, ``stop`` ends it
    gracefully (sources stop, what is in flight drains, end-of-stream reaches the sinks),
    ``cancel`` kills it.
    """

    def __init__(self, plan: PhysicalPlan, executor: RayExecutor) -> None:
        self.plan = plan
        self.namespace = f"citystream.{plan.job}.{uuid.uuid4().hex[:8]}"
        self.state: Literal["created", "running", "finished", "failed", "cancelled"] = "created"
        self._executor = executor
        self._members: list[_Member] = []
        self._pending: dict[ray.ObjectRef, _Member] = {}
        self._outcomes: dict[str, TaskOutcome] = {}

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """Each task's actor name, namespace, process id and node."""
        return {m.name: {"actor": m.name, "namespace": self.namespace, "pid": m.pid, "node": m.node} for m in self._members}

    def start(self) -> RayJob:
        """Creates one actor per task, connects them and starts the sources."""
        if self.state != "created":
            raise CitystreamError(f"job '{self.plan.job}' was already started")
        self.state = "running"
        plan_ref = ray.put(self.plan)
        for vertex in self.plan.vertices:
            options = self._executor.actor_options_for(vertex).ray_options()
            for subtask in range(vertex.parallelism):
                name = vertex.task_name(subtask)
                actor = TaskActor.options(name=name, namespace=self.namespace, max_restarts=0, **options).remote(  # type: ignore[attr-defined]
                    self.plan.job, plan_ref, vertex.id, subtask, self._executor.channels
                )
                self._members.append(_Member(name, vertex, subtask, actor))
        peers = {(m.vertex.id, m.subtask): m.actor for m in self._members}
        connecting: dict[ray.ObjectRef, _Member] = {m.actor.connect.remote(peers): m for m in self._members}
        try:
            self._collect(connecting, self._executor.start_timeout_s, lambda m, info: self._placed(m, info))
        except TimeoutError:
            waiting = [m.name for m in self._members if not m.pid]
            options = {name: self._executor.actor_options_for(m.vertex) for m in self._members if (name := m.name) in waiting}
            self._abort()
            raise CitystreamError(
                f"job '{self.plan.job}': tasks {waiting} did not start within {self._executor.start_timeout_s} s; "
                f"does the cluster have what they ask for? {options}; it has {ray.available_resources()}"
            ) from None
        self._pending = {m.actor.wait_done.remote(): m for m in self._members}
        for member in self._members:
            if member.vertex.is_source:
                member.actor.run_source.remote()
        logger.info("job %s: %d tasks started in namespace %s", self.plan.job, len(self._members), self.namespace)
        return self

    @staticmethod
    def _placed(member: _Member, info: dict[str, Any]) -> None:
        member.pid, member.node = info["pid"], info["node"]

    def _collect(self, refs: dict[ray.ObjectRef, _Member], timeout: float | None, on_result: Any) -> None:
        """Gets every ref, failing the job fast (naming the task) on the first error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = dict(refs)
        while pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=remaining)
            if not ready:
                running = sorted(m.name for m in pending.values())
                raise TimeoutError(f"job '{self.plan.job}': tasks {running} still running after {timeout} s")
            for ref in ready:
                member = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    self._abort()
                    raise JobFailed(member.name, CitystreamError(f"the actor of the task died: {_actor_death(exc)}")) from exc
                except ray.exceptions.RayTaskError as exc:
                    self._abort()
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    raise JobFailed(member.name, cause) from exc
                on_result(member, value)

    def wait(self, timeout: float | None = None) -> JobResult:
        """Waits until every task has ended and returns the job's result.

        Raises:
            JobFailed: a task raised or its actor died; every actor of the job has been stopped.
            TimeoutError: the job is still running after ``timeout`` seconds (it keeps running).
        """
        if self.state == "created":
            raise CitystreamError(f"job '{self.plan.job}' was not started")
        self._collect(self._pending, timeout, self._ended)
        self._pending = {}
        self._release()
        self.state = "finished"
        result = JobResult(self.plan.job)
        for member in self._members:
            outcome = self._outcomes[member.name]
            result.metrics[member.name] = outcome.metrics
            for sink, value in outcome.results.items():
                result.outputs.setdefault(sink, []).append(value)
        return result

    def _ended(self, member: _Member, outcome: TaskOutcome) -> None:
        self._pending = {r: m for r, m in self._pending.items() if m is not member}
        if outcome.error is not None:
            self._abort()
            error = JobFailed(member.name, outcome.error)
            error.add_note(f"in the actor of task '{member.name}':\n{outcome.traceback}")
            raise error
        self._outcomes[member.name] = outcome

    def stop(self, timeout: float | None = None) -> JobResult:
        """Stops the sources; what is in flight drains and the sinks see the end of the stream."""
        for member in self._members:
            if member.vertex.is_source:
                member.actor.stop.remote()
        return self.wait(timeout)

    def cancel(self) -> None:
        """Kills every actor of the job now; nothing is drained."""
        self._release()
        if self.state == "running":
            self.state = "cancelled"

    def _abort(self) -> None:
        self._release()
        self.state = "failed"

    def _release(self) -> None:
        for member in self._members:
            try:
                ray.kill(member.actor, no_restart=True)
            except Exception as exc:  # already gone
                logger.debug("killing %s: %s", member.name, exc)

    def peek(self, timeout: float = 10.0) -> dict[str, list[Any]]:
        """What each sink holds now, per task, while the job runs (as ``JobResult.outputs``)."""
        outputs: dict[str, list[Any]] = {}
        sinks = [m for m in self._members if m.vertex.nodes[-1].is_sink]
        for results in self._ask("results", sinks, timeout).values():
            for sink, value in results.items():
                outputs.setdefault(sink, []).append(value)
        return outputs

    def metrics(self, timeout: float = 10.0) -> dict[str, TaskMetrics]:
        """Each task's metrics now (or at its end), by task name."""
        return self._ask("metrics", self._members, timeout)

    def _ask(self, what: Literal["results", "metrics"], members: list[_Member], timeout: float) -> dict[str, Any]:
        """``what`` of each task by name: from its outcome if it ended, else asked of its actor
        (a task that does not answer in time is left out, with a warning)."""
        answers: dict[str, Any] = {}
        asked: dict[str, ray.ObjectRef] = {}
        for member in members:
            if member.name in self._outcomes:
                answers[member.name] = getattr(self._outcomes[member.name], what)
            elif self.state == "running":
                asked[member.name] = getattr(member.actor, what).remote()
        for name, ref in asked.items():
            try:
                answers[name] = ray.get(ref, timeout=timeout)
            except (ray.exceptions.RayError, TimeoutError) as exc:
                logger.warning("no %s from %s: %s", what, name, exc)
        return {m.name: answers[m.name] for m in members if m.name in answers}


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
    ) -> None:
        self.address = address
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
