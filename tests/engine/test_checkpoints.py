"""Checkpoints on both executors: barriers aligned across channels, state written through
pyarrow.fs with a manifest, kept the last few, restored after a failure (exactly the rows of a
run without failure), a damaged newest checkpoint skipped for the one before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine import Collector, Dataflow, InlineExecutor, JobFailed, Operator, Sink, TableSource
from engine.checkpoint import CheckpointCoordinator, CheckpointOptions, CheckpointStorage, plan_fingerprint
from engine.plan import build_plan
from engine.state import StateError
from engine.task import Barrier, Task

SCHEMA = pa.schema([("ts", pa.int64()), ("key", pa.string()), ("v", pa.int64())])
TOTAL = 4000
BATCH = 100


def table(total: int = TOTAL) -> pa.Table:
    return pa.table(
        {"ts": list(range(total)), "key": [f"k{i % 7}" for i in range(total)], "v": list(range(total))}, schema=SCHEMA
    )


class RunningSum(Operator):
    """Emits, for every row, the running sum of ``v`` of its key: wrong after a restart unless
    the sums come back from the checkpoint."""

    def __init__(self) -> None:
        self.sums: dict[str, int] = {}

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        totals = []
        for key, value in zip(batch.column("key").to_pylist(), batch.column("v").to_pylist(), strict=True):
            self.sums[key] = self.sums.get(key, 0) + value
            totals.append(self.sums[key])
        out.emit(batch.append_column("total", pa.array(totals, pa.int64())))

    def snapshot(self) -> Any:
        return {"sums": self.sums}

    def restore(self, state: Any) -> None:
        self.sums = dict(state["sums"])


class FailOnce(Operator):
    """Raises the first time it sees the row ``v == at``; a marker file remembers that it did,
    across processes (a restarted Ray actor is a new process)."""

    def __init__(self, marker: str, at: int) -> None:
        self.marker, self.at = Path(marker), at

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        if not self.marker.exists() and pc.any(pc.equal(batch.column("v"), self.at)).as_py():
            self.marker.write_text("failed once")
            raise RuntimeError(f"injected failure at v {self.at}")
        out.emit(batch)


class Rows(Sink):
    """Keeps what it receives, and keeps it across a restore (as CollectSink does)."""

    def __init__(self) -> None:
        self.batches: list[pa.RecordBatch] = []

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        self.batches.append(batch)

    def snapshot(self) -> Any:
        return {"rows": pa.Table.from_batches(self.batches) if self.batches else None}

    def restore(self, state: Any) -> None:
        self.batches = state["rows"].to_batches() if state["rows"] is not None else []

    def result(self) -> pa.Table | None:
        return pa.Table.from_batches(self.batches) if self.batches else None


def flow(label: str, fail_at: int | None = None, parallelism: int = 2, marker: Path | None = None) -> Dataflow:
    f = Dataflow(f"ckpt-{label}", parallelism=parallelism)
    stream = f.from_table("rows", table(), "ts", batch_size=BATCH, parallelism=parallelism)
    if fail_at is not None:
        assert marker is not None
        where = str(marker)
        stream = stream.key_by("key").process(lambda: FailOnce(where, fail_at), stream.schema, "fail")
    schema = stream.schema.append(pa.field("total", pa.int64()))
    sums = stream.key_by("key").process(RunningSum, schema, "sums")
    sums.sink_each(Rows, "out", parallelism=1)
    return f


def result_rows(result: Any) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """The (ts, key) of every row the sink got, and each key's final running sum (the order
    of rows across channels is not fixed on Ray, the final sums are)."""
    t = pa.concat_tables([t for t in result.outputs["out"] if t is not None])
    ts = pc.cast(t.column("ts"), pa.int64()).to_pylist()
    rows = sorted(zip(ts, t.column("key").to_pylist(), strict=True))
    finals: dict[str, int] = {}
    for key, total in zip(t.column("key").to_pylist(), t.column("total").to_pylist(), strict=True):
        finals[key] = max(finals.get(key, 0), total)
    return rows, finals


def expected_rows() -> tuple[list[tuple[int, str]], dict[str, int]]:
    sums: dict[str, int] = {}
    for i in range(TOTAL):
        sums[f"k{i % 7}"] = sums.get(f"k{i % 7}", 0) + i
    return sorted((i, f"k{i % 7}") for i in range(TOTAL)), sums


def test_barriers_align_across_channels(tmp_path: Path) -> None:
    """A task blocks a channel whose barrier came and handles what it held after the snapshot:
    the snapshot holds exactly the rows before the barrier on every channel."""
    task, sent = alignment_task()
    snapshots: list[tuple[int, Any]] = []
    task.snapshot_listener = lambda checkpoint_id, encoded: snapshots.append((checkpoint_id, encoded))
    batch = table(4).to_batches()[0]
    assert len(task.channels) == 2
    task.handle(0, batch, 0.0)
    task.handle(0, Barrier(1), 0.0)
    assert task.blocked(0) and not snapshots
    task.handle(0, batch, 0.0)  # after the barrier: held
    assert task.operators[0].sums == {"k0": 0, "k1": 1, "k2": 2, "k3": 3}
    task.handle(1, batch, 0.0)  # before channel 1's barrier: in the checkpoint
    task.handle(1, Barrier(1), 0.0)
    assert [c for c, _ in snapshots] == [1]
    from engine.state import decode_state

    state = decode_state(snapshots[0][1].small, snapshots[0][1].tables)
    assert state["operators"][0]["state"]["sums"] == {"k0": 0, "k1": 2, "k2": 4, "k3": 6}
    assert task.operators[0].sums == {"k0": 0, "k1": 3, "k2": 6, "k3": 9}  # the held batch, handled after
    assert not task.blocked(0)
    assert any(isinstance(m, Barrier) and m.checkpoint_id == 1 for m in sent)


def test_checkpoints_are_written_with_a_manifest_and_the_last_few_kept(tmp_path: Path) -> None:
    options = CheckpointOptions(str(tmp_path), interval_s=0, keep=2)
    result = InlineExecutor(checkpoints=options).run(flow("written"))
    assert result_rows(result) == expected_rows()
    root = tmp_path / "ckpt-written"
    kept = sorted(p.name for p in root.iterdir())
    assert len(kept) == 2, kept
    manifest = json.loads((root / kept[-1] / "_manifest.json").read_text())
    plan = build_plan(flow("written"))
    assert manifest["plan"] == plan_fingerprint(plan)
    assert len(manifest["tasks"]) == sum(v.parallelism for v in plan.vertices)
    for entry in manifest["tasks"].values():
        assert (root / kept[-1] / entry["file"]).stat().st_size == entry["size"]


def test_a_failed_task_restarts_the_job_from_the_last_checkpoint(tmp_path: Path) -> None:
    executor = InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), interval_s=0))
    result = executor.run(flow("recover", fail_at=2500, marker=tmp_path / "failed"))
    assert len(executor.restarts) == 1 and "injected failure" in executor.restarts[0]
    assert "from checkpoint" in executor.restarts[0] and result.recoveries == executor.restarts
    assert result_rows(result) == expected_rows()  # nothing lost, nothing twice, sums right


def test_on_ray_a_failed_task_restarts_every_task_from_the_last_checkpoint(tmp_path: Path, ray_instance: Any) -> None:
    from engine import ChannelOptions, RayExecutor

    options = CheckpointOptions(str(tmp_path / "checkpoints"), interval_s=0.05)
    executor = RayExecutor(channels=ChannelOptions(credits=2, batch_rows=300, linger_ms=1), checkpoints=options)
    job = executor.submit(flow("ray-recover", fail_at=3500, marker=tmp_path / "failed"))
    result = job.wait(timeout=120)
    assert result_rows(result) == expected_rows()
    assert (tmp_path / "failed").exists()
    assert len(result.recoveries) == 1 and "injected failure" in result.recoveries[0]
    assert result.checkpoints is not None and result.checkpoints.completed >= 1


def test_a_recovery_never_uses_the_checkpoint_of_an_earlier_run(tmp_path: Path) -> None:
    """A new run (not restored) that fails before its first checkpoint starts again from the
    beginning, not from what an earlier run of the same job left in the directory."""
    (tmp_path / "already").write_text("the first run must not fail")
    InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), interval_s=0)).run(flow("runs", 50, marker=tmp_path / "already"))
    assert CheckpointStorage(str(tmp_path), "ckpt-runs").ids()  # the same plan: its checkpoints would fit
    executor = InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), interval_s=3600))
    result = executor.run(flow("runs", fail_at=50, marker=tmp_path / "failed"))
    assert len(executor.restarts) == 1 and "from the beginning" in executor.restarts[0]
    assert result_rows(result) == expected_rows()


def test_without_checkpoints_a_failure_fails_the_job(tmp_path: Path) -> None:
    with pytest.raises(JobFailed, match="injected failure"):
        InlineExecutor().run(flow("no-checkpoints", fail_at=100, marker=tmp_path / "failed"))


def test_restarts_are_bounded(tmp_path: Path) -> None:
    class AlwaysFail(Operator):
        def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
            if pc.any(pc.greater(batch.column("v"), 3000)).as_py():
                raise RuntimeError("broken for good")
            out.emit(batch)

    f = Dataflow("always-fails")
    stream = f.from_table("rows", table(), "ts", batch_size=BATCH)
    stream.process(AlwaysFail, stream.schema, "broken").collect("out")
    executor = InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), interval_s=0, max_restarts=2))
    with pytest.raises(JobFailed, match="broken for good"):
        executor.run(f)
    assert len(executor.restarts) == 2


def test_a_damaged_newest_checkpoint_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = CheckpointOptions(str(tmp_path), interval_s=0, keep=3)
    InlineExecutor(checkpoints=options).run(flow("damaged"))
    plan = build_plan(flow("damaged"))
    storage = CheckpointStorage(str(tmp_path), plan.job)
    ids = storage.ids()
    assert len(ids) == 3
    newest = storage.directory(ids[-1])
    victim = sorted(Path(newest).glob("*.state"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    coordinator = CheckpointCoordinator(storage, plan, options)
    with caplog.at_level("WARNING"):
        chosen = coordinator.restorable()
    assert chosen is not None and chosen.checkpoint_id == ids[-2]
    assert "damaged" in caplog.text and f"checkpoint {ids[-1]} skipped" in caplog.text
    # One cut short, and one without a manifest (never completed): skipped too.
    middle = sorted(Path(storage.directory(ids[-2])).glob("*.state"))[0]
    middle.write_bytes(middle.read_bytes()[:-10])
    (Path(storage.directory(ids[0])) / "_manifest.json").unlink()
    assert coordinator.restorable() is None


def test_restore_resumes_a_stopped_job(tmp_path: Path) -> None:
    """``restore=True`` starts from the last checkpoint (a savepoint): the rows before it are
    in the restored sink, the rows after it come again from the source's place."""
    options = CheckpointOptions(str(tmp_path), interval_s=0, keep=5)
    first = InlineExecutor(checkpoints=options).run(flow("resume"))
    assert result_rows(first) == expected_rows()
    storage = CheckpointStorage(str(tmp_path), "ckpt-resume")
    for checkpoint_id in storage.ids()[-3:]:
        storage.delete(checkpoint_id)  # pretend the job stopped earlier
    resumed = InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), interval_s=3600, restore=True)).run(flow("resume"))
    assert result_rows(resumed) == expected_rows()


def test_restore_needs_a_checkpoint_and_the_same_plan(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no complete checkpoint"):
        InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), restore=True)).run(flow("none-yet"))
    InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), interval_s=0)).run(flow("plan", parallelism=2))
    with pytest.raises(Exception, match="no complete checkpoint"):
        InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path), restore=True)).run(flow("plan", parallelism=1))


def test_a_source_that_cannot_rewind_is_refused(tmp_path: Path) -> None:
    from engine import GeneratorSource

    f = Dataflow("generator")
    f.source("gen", GeneratorSource(SCHEMA, lambda p, n: iter(table().to_batches())), "ts").collect("out")
    with pytest.raises(StateError, match="cannot rewind"):
        InlineExecutor(checkpoints=CheckpointOptions(str(tmp_path))).run(f)


def test_the_codec_keeps_sets_of_tuples_and_refuses_what_it_cannot_hold() -> None:
    from engine.state import encode_state, roundtrip

    assert roundtrip({"s": {("a", 1), ("b", 2)}, "k": {("x", 1): 2}}) == {"s": {("a", 1), ("b", 2)}, "k": {("x", 1): 2}}
    with pytest.raises(StateError, match="cannot checkpoint a object"):
        encode_state({"bad": object()})


def alignment_task() -> tuple[Task, list[Any]]:
    f = Dataflow("align-unit", parallelism=2)
    f.from_table("rows", table(40), "ts", batch_size=10, parallelism=2).key_by("key").process(
        RunningSum, SCHEMA.append(pa.field("total", pa.int64())), "sums"
    ).with_parallelism(1).key_by("key").collect("out", parallelism=1)
    plan = build_plan(f)
    vertex = next(v for v in plan.vertices if v.nodes[0].name == "sums")
    sent: list[Any] = []

    class Capture:
        def send(self, vertex: int, subtask: int, channel: int, message: Any) -> None:
            sent.append(message)

    task = Task(plan, vertex, 0, Capture())
    task.snapshot_listener = lambda checkpoint_id, encoded: sent.append(("snapshot", checkpoint_id))
    return task, sent


def test_a_barrier_older_than_the_last_checkpoint_does_not_block_a_channel() -> None:
    task, sent = alignment_task()
    for channel in (0, 1):
        task.handle(channel, Barrier(2), 0.0)
    assert ("snapshot", 2) in sent
    task.handle(0, Barrier(1), 0.0)  # a trigger that came late, after a newer one
    assert not task.blocked(0)


def test_a_blocked_channel_is_not_taken_for_an_idle_one() -> None:
    task, _ = alignment_task()
    task.tracker = type(task.tracker)(len(task.channels), idle_timeout_s=1.0)
    batch = table(4).to_batches()[0]
    task.handle(0, Barrier(1), 0.0)
    task.handle(0, batch, 5.0)  # held, at 5 s
    assert 0 not in task.tracker.idle_channels(5.5)


def test_commits_in_order_and_a_source_keeps_what_the_oldest_kept_checkpoint_needs() -> None:
    class Log(TableSource):
        def __init__(self) -> None:
            super().__init__(table(100), batch_size=10)
            self.released: list[int] = []

        def on_commit(self, checkpoint_id: int, state: Any) -> None:
            self.released.append(checkpoint_id)

    f = Dataflow("commits")
    f.source("log", Log(), "ts").collect("out")
    plan = build_plan(f)
    task = Task(plan, plan.vertices[0], 0, type("Drop", (), {"send": lambda *a: None})())
    task.snapshot_listener = lambda checkpoint_id, encoded: None
    for checkpoint_id in (1, 2, 3):
        task.poll_source()
        task.trigger_checkpoint(checkpoint_id)
    assert isinstance(task.source, Log)
    task.commit(3, oldest_kept=2)
    task.commit(2, oldest_kept=1)  # late: ignored
    assert task.source.released == [2]


def test_a_task_gives_a_checkpoint_up_rather_than_hold_too_much() -> None:
    task, sent = alignment_task()
    given_up: list[tuple[int, str]] = []
    task.give_up_listener = lambda checkpoint_id, why: given_up.append((checkpoint_id, why))
    task.max_held_rows = 6
    batch = table(4).to_batches()[0]
    task.handle(0, Barrier(1), 0.0)
    task.handle(0, batch, 0.0)  # 4 rows held
    assert task.blocked(0) and not given_up
    task.handle(0, batch, 0.0)  # 8 > 6: given up, and both batches handled
    assert given_up and given_up[0][0] == 1 and "rows held" in given_up[0][1]
    assert not task.blocked(0) and task.operators[0].sums["k3"] == 6
    task.handle(1, Barrier(1), 0.0)  # its late barrier starts nothing
    assert not task.blocked(1) and ("snapshot", 1) not in sent


def slowly(batch: pa.RecordBatch) -> pa.RecordBatch:
    import time

    time.sleep(0.01)
    return batch


def test_on_ray_stop_with_savepoint_is_the_last_checkpoint_and_restore_goes_on_from_it(tmp_path: Path, ray_instance: Any) -> None:
    """Checkpoints every 50 ms while the job runs; the savepoint of a stop is the last one (no
    periodic checkpoint starts after it), and the job restored from it ends with every row."""
    import time

    from engine import ChannelOptions, RayExecutor

    def slow_flow() -> Dataflow:
        f = Dataflow("ckpt-savepoint", parallelism=1)
        stream = f.from_table("rows", table(), "ts", batch_size=BATCH).map_batches(slowly, name="slowly")
        schema = stream.schema.append(pa.field("total", pa.int64()))
        stream.key_by("key").process(RunningSum, schema, "sums").sink_each(Rows, "out", parallelism=1)
        return f

    directory = str(tmp_path / "checkpoints")
    channels = ChannelOptions(credits=2, batch_rows=100, linger_ms=1)
    job = RayExecutor(channels=channels, checkpoints=CheckpointOptions(directory, interval_s=0.05, keep=100)).submit(slow_flow())
    storage = CheckpointStorage(directory, "ckpt-savepoint")
    deadline = time.monotonic() + 60
    while len(storage.ids()) < 3:
        assert time.monotonic() < deadline, "no checkpoints"
        time.sleep(0.05)
    savepoint, stopped = job.stop_with_savepoint(timeout=30)
    assert storage.ids()[-1] == savepoint  # the job is cancelled: nothing more can come
    assert 0 < len(stopped.table("out")) < TOTAL
    options = CheckpointOptions(directory, interval_s=3600, restore=True)
    resumed = RayExecutor(channels=channels, checkpoints=options).run(slow_flow(), timeout=120)
    assert result_rows(resumed) == expected_rows()  # every row once (the restored sink's and the new ones), right sums
