"""End to end: the city job on Ray with consoles subscribed to a gateway, and the
`citystream console` command."""

import dataclasses
import subprocess
import sys
import threading
import time

import grpc
import pyarrow.compute as pc

from actors.city import city_flow
from actors.dispatch import DispatchServer, token_digest
from actors.incident_log import IncidentLog
from actors.topology import ConsoleToken, Dispatch, load_city
from engine import ChannelOptions, RayExecutor
from protos.citystream.v1 import dispatch_pb2, dispatch_pb2_grpc


def wait_for(path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)
    return path.read_text()


def test_a_console_subscribed_to_a_gateway_receives_its_incidents_on_ray(ray_instance, tmp_path):
    city = load_city(overrides=["simulation.batch_ms=1000"])  # frames of a simulated second: a faster replay
    city = dataclasses.replace(
        city,
        gateways=tuple(dataclasses.replace(g, port=0) for g in city.gateways),
        dispatch=dataclasses.replace(city.dispatch, log_dir=str(tmp_path)),
    )
    gateway = "incheon-yeonsu-police"
    job = RayExecutor(channels=ChannelOptions(linger_ms=2)).submit(city_flow(city, mode="replay", duration_s=240, seed=7, screen=False))
    received, songdo_only = [], []

    def console(token, into):
        with grpc.insecure_channel(wait_for(tmp_path / f"{gateway}.address")) as channel:
            stub = dispatch_pb2_grpc.IncidentServiceStub(channel)
            try:
                for incident in stub.Subscribe(dispatch_pb2.SubscribeRequest(), metadata=(("authorization", f"Bearer {token}"),)):
                    into.append(incident)
            except grpc.RpcError:
                pass  # the gateway stops at the end of the job

    consoles = [
        threading.Thread(target=console, args=("ioc-demo-token", received), daemon=True),
        threading.Thread(target=console, args=("songdo-demo-token", songdo_only), daemon=True),
    ]
    for thread in consoles:
        thread.start()
    result = job.wait(timeout=300)
    for thread in consoles:
        thread.join(timeout=30)
    everything = result.table("gateways")
    logged = everything.filter(pc.equal(everything["gateway"], gateway))
    assert logged.num_rows > 0
    assert sorted(i.incident_id for i in received) == sorted(logged["incident_id"].to_pylist())
    assert [i.sequence for i in received] == list(range(1, len(received) + 1))
    assert all(i.district == "songdo" for i in songdo_only)
    assert sorted(i.incident_id for i in songdo_only) == sorted(i.incident_id for i in received if i.district == "songdo")
    # The log outlives the job: everything is there, durable, for a console that comes later.
    with IncidentLog(tmp_path, gateway) as log:
        assert log.last_sequence == len(received)


def test_the_console_command_prints_acknowledges_and_remembers_where_it_was(tmp_path):
    config = Dispatch(insecure=True, tokens=(ConsoleToken("desk-1", token_digest("t0ken"), ("*",)),))
    log = IncidentLog(tmp_path / "log", "gw")
    server = DispatchServer("gw", 0, config, log, ["songdo"])
    server.start()
    state = tmp_path / "console.state"
    try:
        incidents = [
            dispatch_pb2.Incident(incident_id=f"fire:songdo:{n}", district="songdo", kind="fire", severity=4,
                                  cameras=["songdo-g-tower"], evidence=f"fire seen {n}")
            for n in range(3)
        ]
        server.publish(log.append(incidents))
        command = [sys.executable, "-m", "actors.cli", "console", "--gateway", server.address, "--token", "t0ken",
                   "--ack-as", "Sgt. Lee", "--state", str(state)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        try:
            while len([line for line in lines if "acknowledged by" in line]) < 3:
                line = process.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
        finally:
            process.kill()
            process.wait()
        assert lines[0].startswith("#1 ") and "songdo" in lines[0] and "fire" in lines[0] and "sev 4" in lines[0]
        assert "[songdo-g-tower]" in lines[0] and "fire seen 0" in lines[0]
        assert "acknowledged by Sgt. Lee (desk-1)" in lines[1]
        assert state.read_text() == "3"
        assert log.get(3).acknowledgement.officer == "Sgt. Lee"
    finally:
        server.stop()
        log.close()
