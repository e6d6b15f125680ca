"""What only the Ray executor has: actors per task, credits, linger, failure handling, stop,
metrics and placement. (Every flow test of tests/engine and tests/operators also runs on Ray.)"""

import os
import signal
import time
import urllib.request

import pyarrow as pa
import pytest

from engine import (
    ActorOptions,
    ChannelOptions,
    CitystreamError,
    Colocation,
    Dataflow,
    GeneratorSource,
    JobFailed,
    OptionError,
    RayExecutor,
    Sink,
)

SCHEMA = pa.schema([("ts", pa.int64()), ("v", pa.int64())])


def rows(start, count):
    return pa.record_batch({"ts": list(range(start, start + count)), "v": list(range(start, start + count))}, schema=SCHEMA)


def endless(batch_rows):
    """A source that never ends and never waits: as fast as the job lets it."""

    def make(partition, partitions):
        start = 0
        while True:
            yield rows(start, batch_rows)
            start += batch_rows

    return make


def trickle(total):
    """A source that sends ``total`` one-row batches, then stays open and idle."""

    def make(partition, partitions):
        for i in range(total):
            yield rows(i, 1)
        while True:
            yield None

    return make


def slow(batch):
    time.sleep(0.02)
    return batch


def fail_on_row_2500(batch):
    if 2500 in batch.column("v").to_pylist():
        raise ValueError("row 2500 is poisoned")
    return batch


def flow_of(make, middle=None, name="ray"):
    """source -> (rebalance) -> middle -> collect, each stage its own actor."""
    flow = Dataflow(name)
    stream = flow.source("src", GeneratorSource(SCHEMA, make), event_time="ts")
    if middle is not None:
        stream = stream.rebalance().map_batches(middle, name="middle")
    stream.rebalance().collect("out")
    return flow


def wait_until(condition, timeout=30.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed actor may linger as a zombie until Ray reaps it.
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False


def assert_all_stopped(job):
    import ray

    pids = [info["pid"] for info in job.tasks.values()]
    assert pids and all(pids)
    assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=20), [p for p in pids if alive(p)]
    for name in job.tasks:
        with pytest.raises(ValueError):
            ray.get_actor(name, namespace=job.namespace)


@pytest.fixture
def executor(ray_instance):
    return RayExecutor(channels=ChannelOptions(credits=2, batch_rows=1000, linger_ms=0), start_timeout_s=60)


def test_each_task_is_a_named_actor_in_the_job_namespace(executor, ray_instance):
    job = executor.submit(flow_of(trickle(3), middle=slow))
    try:
        assert set(job.tasks) == {"src[0]", "middle[0]", "out[0]"}
        assert job.namespace.startswith("citystream.ray.")
        for name, info in job.tasks.items():
            actor = ray_instance.get_actor(name, namespace=job.namespace)
            assert actor is not None and alive(info["pid"])
        assert len({info["pid"] for info in job.tasks.values()}) == 3
    finally:
        job.cancel()
    assert job.state == "cancelled"
    assert_all_stopped(job)


def test_backpressure_makes_a_fast_source_wait_and_bounds_what_is_in_flight(executor):
    job = executor.submit(flow_of(endless(1000), middle=slow))
    assert wait_until(lambda: job.metrics().get("src[0]", None) is not None and job.metrics()["src[0]"].backpressure_s > 0.5)
    result = job.stop(timeout=60)
    source, middle, sink = (result.metrics[n] for n in ("src[0]", "middle[0]", "out[0]"))
    # The source was held back by the slow stage: it spent most of its time waiting for credits.
    assert source.backpressure_s > 0.5
    # Never more frames un-acknowledged on a channel than the credits allow.
    assert 1 <= source.max_in_flight <= 2 and 1 <= middle.max_in_flight <= 2
    # Stopping is graceful: every row the source read reached the sink.
    assert result.table("out").num_rows == source.rows_in == middle.rows_in == sink.rows_in > 0
    assert_all_stopped(job)


def test_an_operator_that_raises_fails_the_job_naming_the_task_and_stops_every_actor(executor):
    job = executor.submit(flow_of(endless(500), middle=fail_on_row_2500))
    with pytest.raises(JobFailed, match=r"task 'middle\[0\]' failed: ValueError: row 2500 is poisoned") as failure:
        job.wait(timeout=60)
    assert failure.value.task == "middle[0]"
    assert isinstance(failure.value.cause, ValueError)
    assert any("fail_on_row_2500" in note for note in failure.value.__notes__)  # the actor's traceback
    assert job.state == "failed"
    assert_all_stopped(job)


class UnreachableConsole(Sink):
    def open(self, subtask, parallelism):
        raise OSError("dispatch console unreachable")

    def process_batch(self, batch, input_index, out):
        pass

    def result(self):
        return None


def test_an_operator_that_cannot_open_fails_the_job_with_its_own_error(executor):
    flow = Dataflow("unopened")
    flow.source("src", GeneratorSource(SCHEMA, endless(100)), event_time="ts").rebalance().sink(UnreachableConsole(), name="console")
    job = executor.submit(flow)
    with pytest.raises(JobFailed, match=r"task 'console\[0\]' failed: OSError: dispatch console unreachable"):
        job.wait(timeout=60)
    assert_all_stopped(job)


def test_an_actor_that_dies_fails_the_job_and_stops_the_others(executor):
    job = executor.submit(flow_of(endless(500), middle=slow))
    assert wait_until(lambda: job.metrics()["out[0]"].rows_in > 0)
    os.kill(job.tasks["middle[0]"]["pid"], signal.SIGKILL)
    with pytest.raises(JobFailed, match=r"task 'middle\[0\]' failed: .*actor of the task died"):
        job.wait(timeout=60)
    assert_all_stopped(job)


def test_linger_sends_a_frame_that_never_fills(ray_instance):
    executor = RayExecutor(channels=ChannelOptions(credits=4, batch_rows=1000, linger_ms=20))
    job = executor.submit(flow_of(trickle(3)))
    try:
        # Three rows, frames of 1000: only the linger timer can send them while the source idles.
        assert wait_until(lambda: job.metrics()["out[0]"].rows_in == 3, timeout=20)
    finally:
        result = job.stop(timeout=60)
    assert result.table("out")["v"].to_pylist() == [0, 1, 2]


def test_small_batches_are_merged_into_frames_of_the_configured_size(ray_instance):
    executor = RayExecutor(channels=ChannelOptions(credits=4, batch_rows=25, linger_ms=60_000))

    def hundred_rows(partition, partitions):
        for i in range(100):
            yield rows(i, 1)

    result = executor.run(flow_of(hundred_rows), timeout=60)
    sink = result.metrics["out[0]"]
    assert sink.operators["out"].batches_in == 4 and sink.rows_in == 100
    assert result.table("out")["v"].to_pylist() == list(range(100))


def test_metrics_per_task_and_operator_are_readable_from_the_handle(executor):
    def thousand_rows(partition, partitions):
        for i in range(10):
            yield rows(i * 100, 100)

    result = executor.run(flow_of(thousand_rows, middle=slow), timeout=60)
    source, middle, sink = (result.metrics[n] for n in ("src[0]", "middle[0]", "out[0]"))
    assert source.operators["src"].rows_out == 1000
    assert middle.operators["middle"].rows_in == middle.operators["middle"].rows_out == 1000
    assert sink.operators["out"].rows_in == 1000
    assert source.frames_out == middle.frames_in >= 10
    assert len(middle.hop_latency_ms) == middle.frames_in and min(middle.hop_latency_ms) >= 0
    assert len(middle.batch_latency_ms) == middle.frames_in and max(middle.batch_latency_ms) >= 20  # it sleeps 20 ms
    assert sink.watermark > 0


def test_metrics_are_exported_to_prometheus_through_ray(executor, ray_instance):
    from ray._private.worker import global_worker

    port = global_worker.node.metrics_export_port
    job = executor.submit(flow_of(endless(200), middle=slow, name="exported"))

    def scraped():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return [line for line in text.splitlines() if line.startswith(("ray_citystream_task_rows_in", "citystream_task_rows_in")) and 'task="middle[0]"' in line]

    try:
        assert wait_until(lambda: bool(scraped()), timeout=60, every=1.0)
    finally:
        job.cancel()


def test_actor_options_reach_ray_and_unplaceable_actors_fail_with_a_clear_error(ray_instance):
    executor = RayExecutor(actors=ActorOptions(num_cpus=0.25, scheduling_strategy="SPREAD"))
    result = executor.run(flow_of(lambda p, n: iter([rows(0, 5)])), timeout=60)
    assert result.table("out").num_rows == 5

    executor = RayExecutor(placement={"out": ActorOptions(resources={"police_gateway": 1})}, start_timeout_s=3)
    with pytest.raises(CitystreamError, match=r"tasks \['out\[0\]'\] did not start within 3 s.*police_gateway"):
        executor.run(flow_of(lambda p, n: iter([rows(0, 5)])))


def test_actor_options_are_checked():
    with pytest.raises(OptionError, match="num_cpus"):
        ActorOptions(num_cpus=-1)
    with pytest.raises(OptionError, match="scheduling_strategy"):
        ActorOptions(scheduling_strategy="PACK")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="resources"):
        ActorOptions(resources={"gpu": -1})


def colocated_flow():
    """src (2 tasks) -> middle (2 tasks) -> out (1 task)."""
    flow = Dataflow("colocated")
    stream = flow.source("src", GeneratorSource(SCHEMA, lambda p, n: iter([rows(p * 10, 5)])), event_time="ts", parallelism=2)
    stream.rebalance().map_batches(lambda b: b, name="middle").with_parallelism(2).rebalance().collect("out")
    return flow


def test_colocation_puts_tasks_in_the_bundles_of_a_placement_group_removed_at_the_end(ray_instance):
    from ray.util import placement_group_table

    colocation = Colocation("middle", "PACK", {"CPU": 0.01}, near={"src": [1, 0]})
    job = RayExecutor(colocation=colocation, start_timeout_s=60).submit(colocated_flow())
    tasks = job.tasks
    result = job.wait(timeout=60)
    assert sorted(result.table("out")["v"].to_pylist()) == list(range(5)) + list(range(10, 15))
    groups = {name: info["placement_group"] for name, info in tasks.items()}
    group = groups["middle[0]"]
    assert group and groups == {"src[0]": group, "src[1]": group, "middle[0]": group, "middle[1]": group, "out[0]": None}
    assert placement_group_table()[group]["state"] == "REMOVED"


def test_bundles_the_cluster_cannot_place_fail_the_job_with_a_clear_error(ray_instance):
    from ray.util import placement_group_table

    before = set(placement_group_table())
    colocation = Colocation("middle", "STRICT_SPREAD", {"CPU": 0.01})  # two bundles, one node
    with pytest.raises(CitystreamError, match=r"could not place the 2 bundles .*'middle'.*STRICT_SPREAD needs a node for each"):
        RayExecutor(colocation=colocation, start_timeout_s=3).run(colocated_flow())
    assert all(info["state"] == "REMOVED" for pg, info in placement_group_table().items() if pg not in before)


def test_colocation_is_checked_against_the_plan():
    from engine import build_plan

    plan = build_plan(colocated_flow())
    vertex = {v.nodes[0].name: v.id for v in plan.vertices}
    bundles = Colocation("middle", near={"src": [None, 1]}).bundles_of(plan)
    assert bundles == {(vertex["middle"], 0): 0, (vertex["middle"], 1): 1, (vertex["src"], 1): 1}
    with pytest.raises(CitystreamError, match="no operator 'district' in job 'colocated'"):
        Colocation("district").bundles_of(plan)
    with pytest.raises(CitystreamError, match="'src' has 2 tasks but 3 places"):
        Colocation("middle", near={"src": [0, 1, 1]}).bundles_of(plan)
    with pytest.raises(CitystreamError, match="task 1 of 'src' is to run next to task 2 of 'middle', which has tasks 0 to 1"):
        Colocation("middle", near={"src": [0, 2]}).bundles_of(plan)
    with pytest.raises(OptionError, match="at least one resource above 0"):
        Colocation("middle", bundle={"CPU": 0})
    with pytest.raises(OptionError, match="strategy"):
        Colocation("middle", strategy="ANYWHERE")  # type: ignore[arg-type]
