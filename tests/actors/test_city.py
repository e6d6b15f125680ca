"""The whole city job on simulated feeds: the same incidents on Ray as inline, and a clean
Ctrl-C of `citystream run`."""

import os
import signal
import subprocess
import sys
import time

from actors.city import city_flow
from actors.topology import load_city
from engine import ChannelOptions, InlineExecutor, RayExecutor

CITY = load_city()


def incident_ids(result):
    return sorted(result.table("gateways")["incident_id"].to_pylist())


def test_the_simulated_city_raises_the_same_incident_ids_on_ray_as_inline(ray_instance):
    inline = InlineExecutor().run(city_flow(CITY, mode="replay", duration_s=120, seed=11, serve=False))
    flow = city_flow(CITY, mode="replay", duration_s=120, seed=11, serve=False)
    on_ray = RayExecutor(channels=ChannelOptions(linger_ms=2)).run(flow, timeout=300)
    assert incident_ids(on_ray) == incident_ids(inline)
    assert len(incident_ids(inline)) >= 3
    assert on_ray.table("refused_detections").num_rows == inline.table("refused_detections").num_rows == 0
    # One actor per district, and each district's incidents come from its own actor.
    for i, district in enumerate(CITY.district_ids()):
        assert on_ray.metrics[f"districts[{i}]"].rows_in > 0
    gateways = on_ray.table("gateways")
    for gateway in set(gateways["gateway"].to_pylist()):
        assert gateway in {g.id for g in CITY.gateways}


def task_actor_pids():
    out = subprocess.run(["pgrep", "-f", "ray::TaskActor"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def run_until_ctrl_c(tmp_path, name, *args):
    """Runs ``citystream run --no-view *args`` until its actors run, lets detections flow,
    sends SIGINT as Ctrl-C would; returns what it printed."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    path = tmp_path / f"{name}.log"
    log = open(path, "w+")
    # SIGINT must reach the CLI as Ctrl-C would, even when the suite itself runs in the
    # background (a shell without job control starts background commands with SIGINT ignored,
    # and children inherit that): the child installs Python's handler before the CLI starts.
    start = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"sys.argv = ['citystream', 'run', '--no-view', *{list(args)!r}]; runpy.run_module('actors.cli', run_name='__main__')"
    )
    process = subprocess.Popen([sys.executable, "-c", start], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "actors in Ray namespace" not in path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, path.read_text()
            time.sleep(0.5)
        time.sleep(5)  # let detections flow
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    return path.read_text()


def test_ctrl_c_takes_a_savepoint_and_run_restore_resumes_from_it_leaving_no_actor(tmp_path):
    before = task_actor_pids()
    text = run_until_ctrl_c(tmp_path, "first")
    assert "stopping: taking a savepoint" in text and "resume with: citystream run --restore" in text
    savepoint = int(text.split(" written; resume")[0].split()[-1])
    detections = int(text.split(" detections and ")[0].split()[-1].replace(",", ""))
    assert detections > 0
    again = run_until_ctrl_c(tmp_path, "restored", "--restore")
    assert "restoring from the last checkpoint" in again
    assert int(again.split("checkpoints: ")[1].split()[0]) >= 1  # it went on checkpointing
    assert int(again.split(" written; resume")[0].split()[-1]) > savepoint
    deadline = time.monotonic() + 30
    while task_actor_pids() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert task_actor_pids() - before == set()
