"""Run by test_recovery.py in a process of its own (a Ray cluster of several nodes cannot share
a process with the suite's Ray instance): a head without CPUs and two worker nodes on this
machine, the city job with checkpoints, the node hosting a district actor removed mid-run.
Prints one JSON line with what the test checks."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import ray
from ray.cluster_utils import Cluster
from recovery_support import Console, catch_up, scratch_city

from actors.city import checkpoint_options, city_flow, source_districts
from engine import ChannelOptions, Colocation, RayExecutor


def main(root: Path, duration_s: float, seed: int) -> dict[str, object]:
    """``root/expected.json``: the incident ids of the same replay without failure."""
    city = scratch_city(root)
    expected = json.loads((root / "expected.json").read_text())
    # Ray notices a lost node within about a second (the defaults take longer).
    system = {"health_check_period_ms": 200, "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": system})
    try:
        workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        # The districts in spread bundles with their cameras and stations (as `citystream run`
        # places them on a cluster): the lost node's bundle must be placed again on the other.
        # Small bundles: the other actors need a free CPU on the remaining node to be placed.
        colocation = Colocation("districts", "SPREAD", {"CPU": 0.25}, source_districts(city))
        executor = RayExecutor(
            channels=ChannelOptions(linger_ms=2), checkpoints=checkpoint_options(city, interval_s=0.25), colocation=colocation
        )
        job = executor.submit(city_flow(city, mode="replay", duration_s=duration_s, seed=seed, screen=False))
        consoles = [Console(city, i) for i in range(len(city.gateways))]
        for console in consoles:
            console.start()
        deadline = time.monotonic() + 120
        while (job.status()["checkpoints"].completed or 0) < 2:
            assert time.monotonic() < deadline, "no checkpoint completed"
            time.sleep(0.05)
        district_nodes = {name: info["node"] for name, info in job.tasks.items() if name.startswith("districts[")}
        victim = next(w for w in workers if w.node_id == district_nodes["districts[0]"])
        removed_at = time.time()
        cluster.remove_node(victim)
        deadline = time.monotonic() + 120
        while not job.recoveries:
            assert time.monotonic() < deadline, "no recovery after the node was removed"
            time.sleep(0.05)
        recovery = job.recoveries[0]
        after = job.tasks
        nodes_after = {info["node"] for info in after.values()}
        groups_after = {info["placement_group"] for name, info in after.items() if name.startswith("districts[")}
        result = job.wait(timeout=400)
        recoveries = result.recoveries
        remaining = {w.node_id for w in workers if w is not victim}
        catch_up(city, consoles)
        for console in consoles:
            console.close()
        delivered = [i for c in consoles for _, i in c.received]
        gaps = [c.gateway for c in consoles if [s for s, _ in c.received] != list(range(1, len(c.received) + 1))]
        ray.shutdown()
        return {
            "expected": len(expected),
            "result_matches": sorted(result.table("gateways")["incident_id"].to_pylist()) == expected,
            "delivered_matches": sorted(delivered) == expected,
            "twice": [i for i, n in Counter(delivered).items() if n > 1][:5],
            "gaps": gaps,
            "recoveries": recoveries,
            "district_nodes_before": sorted(set(district_nodes.values())),
            "removed_node": victim.node_id,
            "tasks_after_on_remaining_nodes": nodes_after <= remaining,
            "districts_in_their_group_after": len(groups_after) == 1 and None not in groups_after,
            "district_nodes_after": sorted({info["node"] for n, info in after.items() if n.startswith("districts[")}),
            "seconds_to_running_again": round(recovery.running_at - removed_at, 3),
            "recovered_from_checkpoint": recovery.checkpoint_id,
        }
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))), flush=True)
