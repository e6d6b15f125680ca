"""The load test's dispatch consoles: each a process of its own (as a console in the operations
center is), subscribed over gRPC to a gateway, sending what it receives back to the harness in
small chunks so that the live figures can be shown as the run goes."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import time
from multiprocessing.process import BaseProcess
from typing import Any

from benchmarks.loadtest.workload import ConsolePlan

CHUNK_S = 0.25  # how often a console sends what it received

# One record per incident received: the incident, its district, the gateway's sequence number,
# then nanoseconds since the epoch: window end, emitted by the district actor, logged by the
# gateway, received by this console.
RECORD_FIELDS = ("incident_id", "district", "sequence", "window_end_ns", "emit_ns", "logged_ns", "receive_ns")


def _ns(stamp: Any, present: bool) -> int | None:
    return stamp.ToNanoseconds() if present else None


def console_main(plan: ConsolePlan, address: str, out: Any, stop: Any) -> None:
    """The console process: checks that the gateway answers, says it is ready, then receives
    until told to stop, sending records every ``CHUNK_S``."""
    import logging

    logging.getLogger("actors.console").setLevel(logging.ERROR)  # its reconnects are counted, not printed
    try:
        asyncio.run(_console(plan, address, out, stop))
    except Exception as exc:  # reported, never hidden: the harness counts on every console
        out.put({"console": plan.index, "failed": f"{type(exc).__name__}: {exc}"})


async def _console(plan: ConsolePlan, address: str, out: Any, stop: Any) -> None:
    from actors.console import ConsoleClient

    client = ConsoleClient(address, plan.token)
    await client.list(limit=1)  # reachable, and the token is accepted
    out.put({"console": plan.index, "ready": time.time_ns()})
    records: list[tuple[Any, ...]] = []
    done = asyncio.Event()

    async def receive() -> None:
        async for incident in client.incidents(retry_delay=0.2):
            records.append(
                (
                    incident.incident_id,
                    incident.district,
                    incident.sequence,
                    _ns(incident.window_end, incident.HasField("window_end")),
                    _ns(incident.emit_time, incident.HasField("emit_time")),
                    _ns(incident.logged_time, incident.HasField("logged_time")),
                    time.time_ns(),
                )
            )
        done.set()

    task = asyncio.create_task(receive())
    try:
        while not stop.is_set() and not done.is_set():
            await asyncio.sleep(CHUNK_S)
            if records:
                chunk, records[:] = list(records), []
                out.put({"console": plan.index, "records": chunk})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    out.put(
        {
            "console": plan.index,
            "records": list(records),
            "end": True,
            "reconnects": client.reconnects,
            "disconnects": client.disconnects,
        }
    )


class ConsoleFleet:
    """Starts the consoles, gathers their records, stops them (by process, each one)."""

    def __init__(self, plans: list[ConsolePlan], addresses: dict[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        self.plans = plans
        self.out = context.Queue()
        self.stop_event = context.Event()
        self.processes: list[BaseProcess] = [
            context.Process(
                target=console_main,
                args=(p, addresses[p.gateway], self.out, self.stop_event),
                name=f"console-{p.index}",
                daemon=True,
            )
            for p in plans
        ]
        self.records: dict[int, list[tuple[Any, ...]]] = {p.index: [] for p in plans}
        self.ended: dict[int, dict[str, Any]] = {}
        self.failures: dict[int, str] = {}
        self.ready: dict[int, int] = {}
        self.closed = False
        for process in self.processes:
            process.start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ready) < len(self.plans):
            if self.failures:
                raise RuntimeError(f"consoles failed: {self.failures}")
            dead = [p.name for p in self.processes if not p.is_alive()]
            if dead:
                raise RuntimeError(f"console processes ended before they were ready: {dead}")
            if time.monotonic() > deadline:
                missing = sorted(set(self.records) - set(self.ready))
                raise TimeoutError(f"consoles {missing} did not reach their gateways within {timeout:.0f} s")
            self.poll(0.1)

    def poll(self, wait: float = 0.0) -> list[tuple[int, tuple[Any, ...]]]:
        """What arrived since the last call: (console, record) pairs."""
        fresh: list[tuple[int, tuple[Any, ...]]] = []
        deadline = time.monotonic() + wait
        while True:
            try:
                message = self.out.get(timeout=max(0.0, deadline - time.monotonic())) if wait else self.out.get_nowait()
            except queue.Empty:
                return fresh
            index = message["console"]
            if "ready" in message:
                self.ready[index] = message["ready"]
            if "failed" in message:
                self.failures[index] = message["failed"]
            for record in message.get("records", ()):
                self.records[index].append(tuple(record))
                fresh.append((index, tuple(record)))
            if message.get("end"):
                self.ended[index] = message
            wait = 0.0

    def close(self, timeout: float = 10.0) -> list[str]:
        """Stops every console and gathers its last records; returns those that had to be killed."""
        self.closed = True
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        while len(self.ended) + len(self.failures) < len(self.plans) and time.monotonic() < deadline:
            self.poll(0.1)
        forced = []
        for process in self.processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                forced.append(process.name)
                process.kill()
                process.join(timeout=5)
        return forced
