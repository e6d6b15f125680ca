"""Executors run a physical plan. ``InlineExecutor`` runs every task in this process, in a
fixed order, so that a run is deterministic (tests, quick local runs)."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa

from engine.checkpoint import (
    Checkpoint,
    CheckpointCoordinator,
    CheckpointOptions,
    CheckpointStats,
    CheckpointStorage,
    restore_error,
    task_key,
)
from engine.dataflow import Dataflow
from engine.errors import CitystreamError, JobFailed
from engine.plan import PhysicalPlan, build_plan
from engine.state import EncodedState, StateError
from engine.task import Message, Task, TaskMetrics

logger = logging.getLogger(__name__)


def _give_up(coordinator: CheckpointCoordinator, task: str, checkpoint_id: int, why: str) -> None:
    coordinator.abort(checkpoint_id, f"task {task}: {why}")


def check_replayable(plan: PhysicalPlan) -> None:
    """Checkpoints need sources that can rewind; refuses a plan with one that cannot."""
    for vertex in plan.vertices:
        source = vertex.nodes[0].source
        if source is not None and not source.replayable:
            raise StateError(
                f"source '{vertex.nodes[0].name}' ({type(source).__name__}) cannot rewind to a checkpoint: "
                "run it without checkpoints, or use a replayable source (TableSource, the city's feeds, ...)"
            )


@dataclass
class JobResult:
    """What a finished job leaves: each sink's result (per task) and each task's metrics."""

    job: str
    outputs: dict[str, list[Any]] = field(default_factory=dict)
    metrics: dict[str, TaskMetrics] = field(default_factory=dict)
    recoveries: list[str] = field(default_factory=list)  # why the job restarted from a checkpoint, each time
    checkpoints: CheckpointStats | None = None  # None: the job ran without checkpoints

    def table(self, sink: str) -> pa.Table:
        """All rows a collect sink received, from all its tasks."""
        if sink not in self.outputs:
            raise CitystreamError(f"no sink named '{sink}'; sinks are {sorted(self.outputs)}")
        tables = [t for t in self.outputs[sink] if isinstance(t, pa.Table)]
        if not tables:
            raise CitystreamError(f"sink '{sink}' keeps no table (it is not a collect sink)")
        return pa.concat_tables(tables)

    def unconsumed(self) -> dict[str, int]:
        """Rows sent to side outputs nothing consumed (late, dead letter...), by output."""
        totals: dict[str, int] = {}
        for metrics in self.metrics.values():
            for label, rows in metrics.unconsumed_rows.items():
                totals[label] = totals.get(label, 0) + rows
        return totals


class Executor(ABC):
    """Runs dataflows. Subclasses host tasks and carry channels; plans, operators and the
    task logic (``engine.task.Task``) are shared by all executors."""

    @abstractmethod
    def run(self, flow: Dataflow | PhysicalPlan) -> JobResult:
        """Runs the job to the end of its sources and returns its result."""

    @staticmethod
    def plan_of(flow: Dataflow | PhysicalPlan) -> PhysicalPlan:
        return flow if isinstance(flow, PhysicalPlan) else build_plan(flow)


class InlineExecutor(Executor):
    """Runs every task of a plan in this process, deterministically.

    Each round reads one batch from every source in plan order, then delivers every queued
    message, task by task in topological order, channel by channel. Memory stays bounded by
    one round of batches.

    Args:
        clock: processing time in seconds (injectable so that idleness can be tested).
        idle_sleep: seconds to sleep when every source is idle and nothing is queued.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        idle_sleep: float = 0.001,
        checkpoints: CheckpointOptions | None = None,
    ) -> None:
        self.clock = clock
        self.idle_sleep = idle_sleep
        self.checkpoints = checkpoints
        self.restarts: list[str] = []  # why each recovery of the last run happened

    def run(self, flow: Dataflow | PhysicalPlan) -> JobResult:
        """Runs the job; with checkpoints, a failed task makes the whole job restart from the
        last complete checkpoint (at most ``max_restarts`` times)."""
        plan = self.plan_of(flow)
        self.restarts = []
        options = self.checkpoints
        if options is None:
            return self._run(plan, None, None)
        coordinator = CheckpointCoordinator(CheckpointStorage(options.directory, plan.job), plan, options, self.clock)
        check_replayable(plan)
        restore = coordinator.restorable() if options.restore else None
        if options.restore and restore is None:
            raise restore_error(plan.job, options.directory)
        while True:
            try:
                result = self._run(plan, coordinator, restore)
                coordinator.abort_all("the job ended before it completed", expected=True)
                result.recoveries = list(self.restarts)
                result.checkpoints = coordinator.stats
                return result
            except JobFailed as exc:
                coordinator.abort_all("the job failed")
                if len(self.restarts) >= options.max_restarts:
                    raise
                restore = coordinator.latest()
                reason = f"{exc} (restart {len(self.restarts) + 1} of {options.max_restarts}, from " + (
                    f"checkpoint {restore.checkpoint_id})" if restore else "the beginning: no checkpoint yet)"
                )
                logger.warning("job %s: %s", plan.job, reason)
                self.restarts.append(reason)

    def _run(self, plan: PhysicalPlan, coordinator: CheckpointCoordinator | None, restore: Checkpoint | None) -> JobResult:
        queues: dict[tuple[int, int], list[deque[Message]]] = {}

        class _Queues:
            def send(self, vertex: int, subtask: int, channel: int, message: Message) -> None:
                queues[(vertex, subtask)][channel].append(message)

        transport = _Queues()
        tasks: list[Task] = []
        for vertex in plan.vertices:
            for subtask in range(vertex.parallelism):
                task = Task(plan, vertex, subtask, transport)
                queues[(vertex.id, subtask)] = [deque() for _ in task.channels]
                tasks.append(task)
        try:
            if coordinator is not None:
                self._checkpointing(tasks, coordinator, restore)
            return self._loop(plan, tasks, queues, coordinator)
        except BaseException:
            for task in tasks:
                if not task.finished:
                    task.abandon()  # ports and files free for the next attempt
            raise

    def _loop(
        self,
        plan: PhysicalPlan,
        tasks: list[Task],
        queues: dict[tuple[int, int], list[deque[Message]]],
        coordinator: CheckpointCoordinator | None,
    ) -> JobResult:
        sources = [t for t in tasks if t.source is not None]
        while not all(t.finished for t in tasks):
            produced = False
            for task in sources:
                produced |= self._guard(task, task.poll_source)
            if coordinator is not None and coordinator.due():
                checkpoint_id = coordinator.begin()
                for task in sources:
                    if not task.finished:
                        self._guard(task, partial(task.trigger_checkpoint, checkpoint_id))
            delivered = self._drain(tasks, queues)
            if coordinator is not None:
                self._acknowledge_finished(tasks, coordinator)
            now = self.clock()
            for task in tasks:
                self._guard(task, partial(task.tick, now))
            if not produced and not delivered:
                if all(t.finished for t in sources) and not any(q for qs in queues.values() for q in qs):
                    unfinished = [t.name for t in tasks if not t.finished]
                    if unfinished:
                        raise CitystreamError(f"job '{plan.job}' stalled: tasks {unfinished} never ended")
                time.sleep(self.idle_sleep)
        result = JobResult(plan.job)
        for task in tasks:
            result.metrics[task.name] = task.metrics
            for sink, value in task.results().items():
                result.outputs.setdefault(sink, []).append(value)
        return result

    @staticmethod
    def _checkpointing(tasks: list[Task], coordinator: CheckpointCoordinator, restore: Checkpoint | None) -> None:
        """Restores every task from ``restore`` and wires the snapshots to the coordinator."""
        storage = coordinator.storage
        by_key = {task_key(t.vertex.id, t.subtask): t for t in tasks}
        if restore is not None:
            for key, task in by_key.items():
                state = storage.read_task(restore.checkpoint_id, restore.manifest["tasks"][key])
                InlineExecutor._guard(task, partial(task.restore, state))
            for task in tasks:
                if task.restored_finished:
                    InlineExecutor._guard(task, task.end_restored)

        def listener(key: str, task: Task) -> Callable[[int, EncodedState], None]:
            def written(checkpoint_id: int, state: EncodedState) -> None:
                if checkpoint_id not in coordinator.pending:
                    return  # given up already
                try:
                    report = storage.write_task(checkpoint_id, key, task.name, state)
                except OSError as exc:  # this checkpoint is lost, not the job
                    coordinator.abort(checkpoint_id, f"task {task.name} could not write: {exc}")
                    return
                completed = coordinator.acknowledge(checkpoint_id, report)
                if completed is not None:
                    for each in tasks:
                        if not each.finished:
                            each.commit(completed.checkpoint_id, coordinator.oldest_kept())

            return written

        for key, task in by_key.items():
            task.snapshot_listener = listener(key, task)
            task.max_held_rows = coordinator.options.max_held_rows
            task.give_up_listener = partial(_give_up, coordinator, task.name)

    @staticmethod
    def _acknowledge_finished(tasks: list[Task], coordinator: CheckpointCoordinator) -> None:
        """Tasks that have ended see no more barriers: their final state stands for them."""
        for task in tasks:
            if not task.finished:
                continue
            for checkpoint_id in coordinator.owed_by_ended(task_key(task.vertex.id, task.subtask), task.last_checkpoint):
                assert task.snapshot_listener is not None
                task.snapshot_listener(checkpoint_id, task.final_state())

    def _drain(self, tasks: list[Task], queues: dict[tuple[int, int], list[deque[Message]]]) -> bool:
        delivered = False
        progress = True
        while progress:
            progress = False
            for task in tasks:
                for channel, queue in enumerate(queues[(task.vertex.id, task.subtask)]):
                    while queue:
                        message = queue.popleft()
                        now = self.clock()
                        self._guard(task, partial(task.handle, channel, message, now))
                        progress = delivered = True
        return delivered

    @staticmethod
    def _guard(task: Task, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except CitystreamError:
            raise
        except Exception as exc:
            raise JobFailed(task.name, exc) from exc
