"""The city job on a real Ray cluster of two nodes, submitted, watched, stopped and restored
with `citystream submit`, `status` and `stop` through the Ray Jobs API (multinode_jobs.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 7


def test_the_city_job_submitted_to_a_two_node_cluster_is_placed_delivers_stops_and_restores(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # The job's entry point is `python -m actors.cli ...`: this environment's python.
    env |= {"RAY_AUTH_MODE": "disabled", "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}
    command = [sys.executable, str(HERE / "multinode_jobs.py"), str(tmp_path), str(SEED)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    head, worker = report["head"], report["worker"]

    # Placement: districts spread over both nodes, each camera and station actor next to its
    # district, the gateways on the node labelled for them.
    assert report["district_nodes"] == sorted([head, worker]), report["district_nodes"]
    assert report["gateway_nodes"] == [worker]
    assert all(report["cameras_next_to_district"]) and all(report["stations_next_to_district"]), report
    # The code came as the job's working directory: uploaded, and the actors run in it.
    assert report["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_"), report["runtime_env"]
    assert all("/runtime_resources/working_dir_files/_ray_pkg_" in cwd for cwd in report["district_cwd"]), report
    assert "city-first" in report["status_running"] and "RUNNING" in report["status_running"]
    assert all(n > 0 for n in report["received_before_stop"]), report["received_before_stop"]

    first, second = report["first"], report["second"]
    said = " ".join(" ".join(first["said"]).split())  # as one line, however the console wrapped it
    assert "placement: districts: a bundle of 1 CPU each, spread over 2 nodes, cameras and stations next" in said, first
    assert "placement: gateways: on the nodes labelled 'gateway'" in said
    # `citystream stop`: a savepoint, then the job ends with nothing left running.
    assert first["stop_code"] == 0 and "STOPPED" in first["stop_out"], first
    assert first["submit_code"] == 0 and "STOPPED" in first["status_after"], first
    savepoint = int(re.search(r"savepoint (\d+) written", said).group(1))  # type: ignore[union-attr]
    assert savepoint == second["savepoint_before"]
    assert first["actors_left"] == [] and second["actors_left"] == []
    # Submitted again with --restore: it resumes from the savepoint and checkpoints on.
    said_again = " ".join(" ".join(second["said"]).split())
    assert "restoring from the last checkpoint" in said_again, second
    assert int(re.search(r"savepoint (\d+) written", said_again).group(1)) > savepoint  # type: ignore[union-attr]
    assert second["stop_code"] == 0 and second["submit_code"] == 0 and "STOPPED" in second["status_after"]
    assert "city-first" in report["status_all"] and "city-restored" in report["status_all"]

    # Every console has every incident its gateway logged, once, in order, across the restart.
    assert report["sequences_in_order"] == [True, True, True]
    for gateway, received in report["received"].items():
        assert received == report["logged"][gateway] and len(set(received)) == len(received), gateway
