"""Chaos: the city job on Ray with checkpoints while a district actor, then a gateway actor, is
killed at a random moment. The consoles must receive exactly the incidents of a run without
failure: none missing, none twice, sequence numbers without gaps."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray
from recovery_support import Console, catch_up, reference_ids, scratch_city, wait_until

from actors.city import checkpoint_options, city_flow
from engine import ChannelOptions, RayExecutor, RayJob

DURATION_S = 480.0  # simulated seconds of the replay (both tests: one reference run)
SEED = 23


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The incident ids of the replay without failure; the ports and directories of the city
    do not change them."""
    return reference_ids(scratch_city(tmp_path_factory.mktemp("reference")), DURATION_S, SEED)


def completed(job: RayJob) -> int:
    stats = job.status()["checkpoints"]
    return stats.completed if stats is not None else 0


def kill(job: RayJob, task: str) -> None:
    info = job.tasks[task]
    ray.kill(ray.get_actor(info["actor"], namespace=info["namespace"]), no_restart=True)


def test_killed_district_and_gateway_actors_lose_no_incident_and_deliver_none_twice(
    ray_instance: Any, tmp_path: Path, expected: list[str]
) -> None:
    city = scratch_city(tmp_path)
    assert len(expected) >= 10
    options = checkpoint_options(city, interval_s=0.25)
    executor = RayExecutor(channels=ChannelOptions(linger_ms=2), checkpoints=options)
    job = executor.submit(city_flow(city, mode="replay", duration_s=DURATION_S, seed=SEED, screen=False))
    consoles = [Console(city, i) for i in range(len(city.gateways))]
    for console in consoles:
        console.start()
    rng = random.Random(SEED)
    try:
        wait_until(lambda: completed(job) >= 1, 120, "a first checkpoint")
        time.sleep(rng.uniform(0.0, 1.5))
        kill(job, "districts[1]")
        wait_until(lambda: len(job.recoveries) == 1, 120, "the recovery from the district's death")
        before = completed(job)
        wait_until(lambda: completed(job) > before, 120, "a checkpoint after the recovery")
        time.sleep(rng.uniform(0.0, 1.0))
        kill(job, "gateways[0]")
        result = job.wait(timeout=400)
    finally:
        job.cancel()
    assert len(result.recoveries) == 2, result.recoveries
    assert "districts[1]" in result.recoveries[0] and "gateways[0]" in result.recoveries[1]
    # The restored sinks hold exactly the failure-free run's incidents.
    assert sorted(result.table("gateways")["incident_id"].to_pylist()) == expected
    catch_up(city, consoles)
    for console in consoles:
        console.close()
    delivered: list[str] = []
    for console in consoles:
        sequences = [s for s, _ in console.received]
        assert sequences == list(range(1, len(sequences) + 1)), f"{console.gateway}: sequences with gaps or repeats"
        delivered += [i for _, i in console.received]
    twice = [i for i, n in Counter(delivered).items() if n > 1]
    assert not twice, f"delivered twice: {twice[:5]}"
    assert sorted(delivered) == expected
    assert any(c.client.reconnects > 0 for c in consoles if c.gateway == city.gateways[0].id)


def test_a_lost_node_hosting_a_district_actor_is_recovered_on_the_remaining_node(tmp_path: Path, expected: list[str]) -> None:
    """A cluster of a head (no CPUs) and two worker nodes on this machine, in a process of its
    own; the districts are in spread placement-group bundles; the node of districts[0] is
    removed mid-run and the job recovers on the other, its bundle placed again there."""
    import json
    import os
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(here.parent.parent), str(here)])}
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    command = [sys.executable, str(here / "multinode_recovery.py"), str(tmp_path), str(DURATION_S), str(SEED)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["tasks_after_on_remaining_nodes"] and report["recovered_from_checkpoint"] is not None, report
    assert len(report["district_nodes_before"]) == 2, report  # spread over both workers at first
    assert report["districts_in_their_group_after"], report  # the lost node's bundle placed again
    assert len(report["recoveries"]) >= 1 and "died" in report["recoveries"][0], report
    assert report["result_matches"] and report["delivered_matches"], report
    assert not report["twice"] and not report["gaps"], report
