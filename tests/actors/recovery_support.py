"""What the recovery tests share: a city on fixed free ports with its logs and checkpoints in a
scratch directory, consoles that follow every gateway across restarts, and the reference run."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

from actors.city import city_flow
from actors.console import ConsoleClient
from actors.dispatch import DispatchServer
from actors.incident_log import IncidentLog
from actors.topology import City, load_city
from engine import InlineExecutor

TOKEN = "ioc-demo-token"  # the operations center's console: every district


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    """``condition()``'s first true value, asked every 50 ms; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def free_ports(count: int) -> list[int]:
    """Ports free now, outside the ranges others pick ports from while the test runs: the
    kernel's ephemeral range (32768-60999) and Ray's worker ports (10002-19999). A port taken
    by someone else between here and the gateway's restart would be a console talking to a
    stranger."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in chosen:
            chosen.append(port)
    return chosen


def scratch_city(root: Path) -> City:
    """The default city with its gateways on fixed free ports (a restarted gateway serves where
    its consoles look) and its incident logs and checkpoints under ``root``. Its feeds send
    frames of a simulated second (not 200 ms): the same rows and incidents, replayed in about
    a quarter of the time."""
    city = load_city()
    ports = free_ports(len(city.gateways))
    return dataclasses.replace(
        city,
        gateways=tuple(dataclasses.replace(g, port=p) for g, p in zip(city.gateways, ports, strict=True)),
        dispatch=dataclasses.replace(city.dispatch, log_dir=str(root / "incidents")),
        checkpoints=dataclasses.replace(city.checkpoints, directory=str(root / "checkpoints")),
        simulation=dataclasses.replace(city.simulation, batch_ms=1000),
    )


def reference_ids(city: City, duration_s: float, seed: int) -> list[str]:
    """The incident ids of a run without failure (inline: deterministic, no actors)."""
    result = InlineExecutor().run(city_flow(city, mode="replay", duration_s=duration_s, seed=seed, serve=False, screen=False))
    return sorted(result.table("gateways")["incident_id"].to_pylist())


class Console(threading.Thread):
    """A dispatch console following one gateway: it reconnects after every disconnect and
    resumes after the last sequence it saw, as a real console does."""

    def __init__(self, city: City, gateway_index: int) -> None:
        super().__init__(daemon=True)
        gateway = city.gateways[gateway_index]
        self.gateway = gateway.id
        self.client = ConsoleClient(f"{city.dispatch.host}:{gateway.port}", TOKEN)
        self.received: list[tuple[int, str]] = []  # (sequence, incident id), in order of arrival
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def run(self) -> None:
        asyncio.run(self._follow())

    async def _follow(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()  # type: ignore[assignment]
        try:
            async for incident in self.client.incidents(retry_delay=0.2):
                self.received.append((incident.sequence, incident.incident_id))
        except asyncio.CancelledError:
            pass

    def close(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self.join(timeout=10)


def catch_up(city: City, consoles: list[Console], timeout: float = 60.0) -> None:
    """After the job: serve each gateway's log again on its port (the log outlives the job)
    until its consoles have everything in it, then stop."""
    log_dir = Path(city.dispatch.log_dir)
    for gateway in city.gateways:
        log = IncidentLog(log_dir, gateway.id)
        server = DispatchServer(gateway.id, gateway.port, city.dispatch, log, city.district_ids())
        server.start()
        try:
            deadline = time.monotonic() + timeout
            followers = [c for c in consoles if c.gateway == gateway.id]
            while any(len(c.received) < log.last_sequence for c in followers):
                assert time.monotonic() < deadline, f"{gateway.id}: consoles stuck behind sequence {log.last_sequence}"
                time.sleep(0.1)
        finally:
            server.stop()
            log.close()
