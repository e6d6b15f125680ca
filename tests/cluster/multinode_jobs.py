"""Run by test_cluster_jobs.py in a process of its own (a Ray cluster of several nodes cannot
share a process with the suite's Ray instance): a head and a second node labelled for the
gateways, on this machine, with the dashboard (the Jobs API). As a user would:

1. `citystream submit` the city job (the checkout travels as its working directory) with
   checkpoints; consoles follow the three gateways; `citystream status` while it runs;
2. `citystream stop`: the job takes a savepoint and ends, leaving no actor;
3. `citystream submit -- run --restore`: it resumes from the savepoint, and the consoles go on
   where they were; `citystream stop` again.

Prints one JSON line with what the test checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
# Imports of this script only: the cluster's processes get no PYTHONPATH, the code reaches them
# as the job's working directory.
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "actors")]

from ray.cluster_utils import Cluster  # noqa: E402
from ray.util.state import list_actors  # noqa: E402
from recovery_support import Console, catch_up, free_ports, wait_until  # noqa: E402

from actors.incident_log import IncidentLog  # noqa: E402
from actors.topology import load_city  # noqa: E402
from engine.checkpoint import CheckpointStorage  # noqa: E402


def cli(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def said(output: str) -> list[str]:
    """The lines of a job's output the test looks at (the output also holds whatever Ray logs,
    such as an actor's stack when it is killed)."""
    marks = ("placement:", "savepoint", "restoring from", "incidents:")
    return [line.strip() for line in output.splitlines() if any(m in line for m in marks)]


def jobs_api_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main(root: Path, seed: int) -> dict[str, Any]:
    city = load_city()
    dashboard_port, agent_port, *ports = free_ports(2 + len(city.gateways))
    overrides = [f"gateways.{i}.port={port}" for i, port in enumerate(ports)] + [
        f"dispatch.log_dir={root / 'incidents'}",
        f"checkpoints.directory={root / 'checkpoints'}",  # one disk for both nodes: shared storage
        "dispatch.ingest_port=-1",
        "placement.gateway_nodes=required",
        # Simulated time runs faster, so that incidents come sooner: fewer rows, bigger frames.
        "simulation.detections_per_camera_per_s=2",
        "simulation.batch_ms=1000",
    ]
    city = load_city(overrides=overrides)
    storage = CheckpointStorage(city.checkpoints.directory, "city")
    # A replay of a simulated day, far longer than the test, which stops it.
    run = ["run", "--mode", "replay", "--duration", "86400", "--seed", str(seed), "--checkpoint-interval", "1"]
    run += [arg for o in overrides for arg in ("--set", o)]
    report: dict[str, Any] = {"times": {}}
    begun = time.monotonic()
    lap = lambda name: report["times"].__setitem__(name, round(time.monotonic() - begun, 1))
    # The head's dashboard agent (which runs the jobs) on a port of its own: Ray's default one
    # may be taken by another Ray instance on this machine (the suite's).
    head_args = {
        "num_cpus": 2,
        "include_dashboard": True,
        "dashboard_host": "127.0.0.1",
        "dashboard_port": dashboard_port,
        "dashboard_agent_listen_port": agent_port,
    }
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    submits: list[subprocess.Popen[str]] = []
    try:
        worker = cluster.add_node(num_cpus=2, resources={"gateway": 1})
        cluster.wait_for_nodes()
        url = f"http://127.0.0.1:{dashboard_port}"
        wait_until(lambda: jobs_api_up(url), 60, "the Jobs API")
        report |= {"head": cluster.head_node.node_id, "worker": worker.node_id}
        lap("cluster_up")

        def submit(job_id: str, *extra: str) -> subprocess.Popen[str]:
            command = [sys.executable, "-m", "actors.cli", "submit", "--address", url, "--deps", "image", "--job-id", job_id]
            process = subprocess.Popen(
                [*command, "--", *run, *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            submits.append(process)
            return process

        def task_actors() -> dict[str, Any]:
            alive = list_actors(address=url, filters=[("state", "=", "ALIVE")], limit=1000, detail=True)
            return {a.name: a for a in alive if a.name and (a.ray_namespace or "").startswith("citystream.city.")}

        def actors_left() -> list[str]:
            """The job's actors still alive once Ray has had 30 s to stop them (it does so after the driver ends)."""
            deadline = time.monotonic() + 30
            while (left := task_actors()) and time.monotonic() < deadline:
                time.sleep(0.2)
            return sorted(left)

        first = submit("city-first")
        consoles = [Console(city, i) for i in range(len(city.gateways))]
        for console in consoles:
            console.start()
        names = [f"{op}[{i}]" for op in ("districts", "gateways", "cameras") for i in range(3)]
        names += [f"stations[{i}]" for i in range(len(city.stations))]
        def placed() -> dict[str, Any]:
            assert first.poll() is None, f"citystream submit ended: {first.communicate()[0][-3000:]}"
            found = task_actors()
            return found if all(n in found for n in names) else {}

        actors = wait_until(placed, 180, "the actors")
        lap("placed")
        node = lambda name: actors[name].node_id
        district_of = {s.id: [d.id for d in city.districts].index(s.district) for s in city.stations}
        report |= {
            "district_nodes": sorted({node(f"districts[{i}]") for i in range(3)}),
            "gateway_nodes": sorted({node(f"gateways[{i}]") for i in range(3)}),
            "cameras_next_to_district": [node(f"cameras[{i}]") == node(f"districts[{i}]") for i in range(3)],
            "stations_next_to_district": [
                node(f"stations[{i}]") == node(f"districts[{district_of[s.id]}]") for i, s in enumerate(city.stations)
            ],
            "district_cwd": [os.readlink(f"/proc/{actors[f'districts[{i}]'].pid}/cwd") for i in range(3)],
            "runtime_env": json.loads(actors["districts[0]"].serialized_runtime_env or "{}"),
            "status_running": cli("status", "city-first", "--address", url).stdout,
        }
        wait_until(lambda: all(c.received for c in consoles), 180, "an incident at every console")
        wait_until(lambda: storage.ids(), 60, "a checkpoint")
        report["received_before_stop"] = [len(c.received) for c in consoles]
        lap("incidents")
        stop = cli("stop", "city-first", "--address", url)
        output, _ = first.communicate(timeout=120)
        report["first"] = {
            "stop_code": stop.returncode,
            "stop_out": stop.stdout[-1500:],
            "submit_code": first.returncode,
            "said": said(output),
            "out": output[-5000:],
            "status_after": cli("status", "city-first", "--address", url).stdout,
            "actors_left": actors_left(),
        }
        lap("stopped")

        second = submit("city-restored", "--restore")
        savepoint = max(storage.ids())
        wait_until(lambda: max(storage.ids(), default=0) > savepoint, 180, "a checkpoint of the restored job")
        lap("restored")
        stop = cli("stop", "city-restored", "--address", url)
        output, _ = second.communicate(timeout=120)
        report["second"] = {
            "savepoint_before": savepoint,
            "stop_code": stop.returncode,
            "submit_code": second.returncode,
            "said": said(output),
            "out": output[-5000:],
            "status_after": cli("status", "city-restored", "--address", url).stdout,
            "actors_left": actors_left(),
        }
        report["status_all"] = cli("status", "--address", url).stdout
        lap("stopped_again")
        catch_up(city, consoles)
        for console in consoles:
            console.close()
        report["received"] = {c.gateway: [i for _, i in c.received] for c in consoles}
        report["sequences_in_order"] = [[s for s, _ in c.received] == list(range(1, len(c.received) + 1)) for c in consoles]
        report["logged"] = {}
        for gateway in city.gateways:
            log = IncidentLog(Path(city.dispatch.log_dir), gateway.id)
            report["logged"][gateway.id] = [r.incident_id for r in log.read_after(0)]
            log.close()
        return report
    finally:
        for process in submits:
            if process.poll() is None:
                process.kill()
        cluster.shutdown()
        lap("shut_down")


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps(result), flush=True)
