"""Live events for the screens: each has an increasing id and a district ("" for the whole
city); a page that reconnects sends the last id it saw (Server-Sent Events' Last-Event-ID)
and gets what it missed, as far back as the hub remembers, then the live ones."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    id: int
    kind: str  # "incident", "weather", "health"
    district: str  # "" for events of the whole city
    data: dict[str, Any]

    def sse(self, epoch: str) -> str:
        """The event as Server-Sent Events text; its id carries the hub's epoch, so that a page
        coming back to a restarted server (ids from 1 again) is given everything it has."""
        return f"id: {epoch}:{self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


class EventHub:
    """Keeps the last ``history`` events; ``publish`` and ``follow`` run on one event loop."""

    def __init__(self, history: int = 10_000) -> None:
        self.events: deque[Event] = deque(maxlen=history)
        self.last_id = 0
        self.epoch = uuid.uuid4().hex[:8]  # a new one each time the hub (the server) starts
        self._changed = asyncio.Condition()

    def last_seen(self, header: str) -> int:
        """The id to go on after, from a page's Last-Event-ID (``epoch:id``): 0 (everything
        still kept) when it is of another epoch or there is none."""
        epoch, sep, number = header.partition(":")
        if not sep or epoch != self.epoch:
            return 0
        try:
            return int(number)
        except ValueError:
            return 0

    async def publish(self, kind: str, district: str, data: dict[str, Any]) -> Event:
        async with self._changed:
            self.last_id += 1
            event = Event(self.last_id, kind, district, data)
            self.events.append(event)
            self._changed.notify_all()
        return event

    def after(self, last_seen: int, districts: Iterable[str] | None) -> list[Event]:
        """What came after ``last_seen`` for these districts (None: all); events of the whole
        city go to everybody."""
        allowed = None if districts is None else set(districts)
        return [e for e in self.events if e.id > last_seen and (allowed is None or not e.district or e.district in allowed)]

    async def follow(self, last_seen: int, districts: Iterable[str] | None) -> AsyncIterator[Event]:
        """The events after ``last_seen``, then each new one, for as long as it is followed."""
        allowed = None if districts is None else list(districts)
        while True:
            mark = self.last_id
            for event in self.after(last_seen, allowed):  # taken before any wait: up to ``mark``
                yield event
            last_seen = mark
            async with self._changed:
                while self.last_id <= last_seen:
                    await self._changed.wait()
