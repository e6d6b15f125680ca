"""The screens' task in the city job: incidents, weather readings and the window's counts are
its three inputs, each row an event for the pages; it serves the operations page, the live
events and the residents' pages on its own event-loop thread."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from actors.schemas import TIME, WEATHER_CONTEXT
from actors.topology import City
from actors.web.hub import EventHub
from engine import CitystreamError, Collector, Operator

logger = logging.getLogger(__name__)

# The screen emits nothing; this is only its declared output (a process needs one).
SCREEN_OUTPUT = pa.schema([pa.field("ts", TIME)])

ScreenEvent = tuple[str, str, dict[str, Any]]  # kind, district, what the page gets


def incident_events(batch: pa.RecordBatch) -> list[ScreenEvent]:
    """Incidents as screen events: what the page shows and the evidence and weather of a click."""
    rows = batch.to_pylist()
    payloads = [
        {
            "incident_id": r["incident_id"],
            "district": r["district"],
            "kind": r["kind"],
            "severity": r["severity"],
            "window_end": r["window_end"].isoformat() if r["window_end"] is not None else None,
            "cameras": r["cameras"],
            "evidence": r["evidence"],
            "weather": {f: r[f"weather_{f}"] for f in WEATHER_CONTEXT},
        }
        for r in rows
    ]
    return [("incident", r["district"], p) for r, p in zip(rows, payloads, strict=True)]


def weather_events(batch: pa.RecordBatch) -> list[ScreenEvent]:
    """Readings as screen events: a station's seven fields of the district's weather."""
    rows = batch.to_pylist()
    return [("weather", r["district"], {"station": r["station"], "values": {f: r[f] for f in WEATHER_CONTEXT}}) for r in rows]


def count_events(batch: pa.RecordBatch) -> list[ScreenEvent]:
    """The 24-hour window's incidents by district and kind, as screen events (no camera, no place)."""
    rows = batch.to_pylist()
    return [("counts", r["district"], {"kind": r["kind"], "count": r["count"], "window_end": str(r["window_end"])}) for r in rows]


class Screen(Operator):
    """One task of three inputs: incidents (0), weather readings (1) and the window's counts
    by district and kind (2). It keeps the latest weather and the last window's counts per
    district, publishes every event to the hub, and (with ``serve``) serves the pages on
    ``dispatch.host:screen.port``, its address written to ``<log_dir>/screen.address``.
    It emits nothing."""

    EVENTS = (incident_events, weather_events, count_events)  # by input

    def __init__(self, city: City, serve: bool = True, health_key: str = "") -> None:
        self.city = city
        self.serve = serve
        self.health_key = health_key  # who may post the pipeline's health (the job's driver)
        self.published: Counter[str] = Counter()
        self.weather: dict[str, dict[str, float]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._runner: Any = None
        self.address = ""

    def open(self, task_index: int, parallelism: int) -> None:
        if parallelism != 1:
            raise CitystreamError(f"the screen runs as one task, not {parallelism}")
        if self.serve:
            try:
                self._start()
            except CitystreamError as exc:
                # A view of the job, not part of it: the dispatch to the police goes on without it.
                logger.error("%s; the job goes on without the operations screen", exc)

    def _start(self, timeout: float = 30.0) -> None:
        from actors.web.server import ScreenServer

        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = ScreenServer(self.city, EventHub(), self.health_key)
                self._server.weather, self._server.counts = self.weather, self.counts
                loop.run_until_complete(self._listen())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="screen", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            raise CitystreamError(f"the screen could not start: {failure[0] if failure else 'timed out'}")
        log_dir = Path(self.city.dispatch.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "screen.address").write_text(self.address)
        logger.warning("operations screen on http://%s/ (residents: http://%s/residents/<district>)", self.address, self.address)

    async def _listen(self) -> None:
        from aiohttp import web

        self._runner = web.AppRunner(self._server.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.city.dispatch.host, self.city.screen.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"{self.city.dispatch.host}:{port}"

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        for kind, district, payload in self.EVENTS[input_index](batch):
            self.publish(kind, district, payload)

    def publish(self, kind: str, district: str, payload: dict[str, Any]) -> None:
        """Keeps a reading's weather or a window's count, and hands the event to the pages."""
        if kind == "weather":
            self.weather[district] = payload["values"]
            payload = {"district": district, **payload}
        elif kind == "counts":
            self.counts.setdefault(district, {})[payload["kind"]] = payload["count"]
        self.published[kind] += 1
        if self._loop is not None and self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.hub.publish(kind, district, payload), self._loop)

    def snapshot(self) -> bytes:
        """The latest weather and counts per district (the window's counts come once a window)."""
        return json.dumps({"weather": self.weather, "counts": self.counts}).encode()

    def restore(self, state: Any) -> None:
        saved = json.loads(bytes(state))
        self.weather.clear()
        self.weather.update(saved["weather"])
        self.counts.clear()
        self.counts.update(saved["counts"])

    def close(self) -> None:
        (Path(self.city.dispatch.log_dir) / "screen.address").unlink(missing_ok=True)
        loop = self._loop
        if loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
        self._loop = None

    def result(self) -> dict[str, Any]:
        return {"published": dict(self.published), "weather": dict(self.weather), "counts": dict(self.counts)}
