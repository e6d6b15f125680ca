"""The HTTP side of the screens (aiohttp): the operations page and its live events (SSE),
scoped by the operator's token as the gRPC dispatch is, and the public residents' pages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from actors.dispatch import token_digest
from actors.topology import City
from actors.web.hub import EventHub
from actors.web.render import operations_page, residents_page


class ScreenServer:
    """Serves ``hub``'s events and the pages of ``city``. ``weather`` and ``counts`` are the
    latest reading per district and the last 24 hours' incidents by kind per district, kept
    by whoever feeds the hub."""

    def __init__(self, city: City, hub: EventHub, health_key: str = "") -> None:
        self.city = city
        self.hub = hub
        self.health_key = health_key
        self.tokens = {t.token_sha256: frozenset(t.districts) for t in city.dispatch.tokens}
        self.weather: dict[str, dict[str, float]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/", self.operations),
                web.get("/events", self.events),
                web.get("/residents/{district}", self.residents),
                web.get("/api/residents/{district}", self.residents_data),
                web.post("/api/health", self.health),
            ]
        )

    def districts_of(self, request: web.Request) -> frozenset[str]:
        """The districts the request's token may see (401 without a known token)."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.query.get("token", "")
        allowed = self.tokens.get(token_digest(token)) if token else None
        if allowed is None:
            raise web.HTTPUnauthorized(text="a known operator token is needed (Authorization: Bearer ..., or ?token=)")
        every = frozenset(self.city.district_ids())
        return every if "*" in allowed else allowed & every

    async def operations(self, request: web.Request) -> web.Response:
        districts = self.districts_of(request)
        return web.Response(text=operations_page(self.city, set(districts)), content_type="text/html")

    async def events(self, request: web.Request) -> web.StreamResponse:
        districts = self.districts_of(request)
        last_seen = self.hub.last_seen(request.headers.get("Last-Event-ID") or request.query.get("after") or "")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")  # a page that loses the stream comes back within a second
        try:
            async for event in self.hub.follow(last_seen, districts):
                await response.write(event.sse(self.hub.epoch).encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def health(self, request: web.Request) -> web.Response:
        """The job's driver posts the pipeline's health (rates, watermark lag, backpressure,
        checkpoints) with the key the job was built with; every operator sees it."""
        if not self.health_key or request.headers.get("X-Citystream-Key") != self.health_key:
            raise web.HTTPForbidden(text="only the job's driver posts the health")
        await self.hub.publish("health", "", await request.json())
        return web.Response(status=204)

    def _district(self, request: web.Request) -> str:
        district = request.match_info["district"]
        if district not in self.city.district_ids():
            raise web.HTTPNotFound(text=f"no district '{district}'; districts are {self.city.district_ids()}")
        return district

    async def residents(self, request: web.Request) -> web.Response:
        district = self._district(request)
        page = residents_page(self.city, district, self.weather.get(district), self.counts.get(district, {}))
        return web.Response(text=page, content_type="text/html")

    async def residents_data(self, request: web.Request) -> web.Response:
        district = self._district(request)
        data: dict[str, Any] = {"weather": self.weather.get(district), "incidents_24h": self.counts.get(district, {})}
        return web.Response(text=json.dumps(data), content_type="application/json")
