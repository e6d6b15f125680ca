"""Watermarks: generation at sources (bounded out-of-orderness) and tracking over inputs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from engine.timeutil import MAX_WATERMARK, MIN_WATERMARK


class BoundedOutOfOrderness:
    """Emits watermarks ``max event time seen - bound - 1``.

    A watermark W promises that every row still to come has event time > W; a row may
    arrive up to ``bound`` ms behind the latest one seen before it is late.
    """

    def __init__(self, bound_ms: int) -> None:
        self.bound_ms = bound_ms
        self.max_seen = MIN_WATERMARK

    def observe(self, times: pa.Array) -> int | None:
        """Takes the event times of a batch; returns the new watermark if it advanced."""
        if len(times) == 0:
            return None
        # A timestamp scalar's integer value directly: no cast of the column, no datetime.
        scalar = pc.max(times)
        batch_max = scalar.value if isinstance(scalar, pa.TimestampScalar) else scalar.as_py()
        if batch_max is None or batch_max <= self.max_seen:
            return None
        self.max_seen = batch_max
        return batch_max - self.bound_ms - 1

    @property
    def current(self) -> int:
        if self.max_seen == MIN_WATERMARK:
            return MIN_WATERMARK
        return self.max_seen - self.bound_ms - 1


class WatermarkTracker:
    """The watermark of a task: the minimum over its input channels.

    An ended channel counts as MAX_WATERMARK. With ``idle_timeout`` set, a channel that has
    sent nothing (no data, no watermark) for that long stops holding the watermark back until
    it sends again. The idle clock starts when the first channel delivers something: until
    then no channel is idle, so that an input whose task starts a little later than the others
    (or whose first rows take longer) does not find its rows late. The tracker never moves
    backwards.
    """

    def __init__(self, channels: int, idle_timeout_s: float | None = None) -> None:
        self._watermarks = [MIN_WATERMARK] * channels
        self._last_active: list[float | None] = [None] * channels
        self._first_activity: float | None = None
        self._ended = [False] * channels
        self._idle_timeout_s = idle_timeout_s
        self.current = MIN_WATERMARK

    def on_activity(self, channel: int, now: float) -> None:
        """Records that a channel delivered something at processing time ``now``."""
        self._last_active[channel] = now
        if self._first_activity is None:
            self._first_activity = now

    def on_watermark(self, channel: int, watermark: int, now: float) -> int | None:
        """Takes a channel's watermark; returns the task watermark if it advanced."""
        self.on_activity(channel, now)
        if watermark > self._watermarks[channel]:
            self._watermarks[channel] = watermark
        return self._advance(now)

    def on_end(self, channel: int, now: float) -> int | None:
        """A channel ended; returns the task watermark if it advanced."""
        self._ended[channel] = True
        self._watermarks[channel] = MAX_WATERMARK
        if self._first_activity is None:
            self._first_activity = now
        return self._advance(now)

    def on_tick(self, now: float) -> int | None:
        """Re-evaluates idleness at processing time ``now``; returns the watermark if it advanced."""
        return self._advance(now) if self._idle_timeout_s is not None else None

    def all_ended(self) -> bool:
        return all(self._ended)

    def idle_channels(self, now: float) -> list[int]:
        if self._idle_timeout_s is None or self._first_activity is None:
            return []
        started = self._first_activity
        return [
            i
            for i, last in enumerate(self._last_active)
            if not self._ended[i] and now - (started if last is None else last) >= self._idle_timeout_s
        ]

    def _advance(self, now: float) -> int | None:
        idle = set(self.idle_channels(now))
        active = [w for i, w in enumerate(self._watermarks) if i not in idle]
        if not active or (idle and min(active) == MAX_WATERMARK):
            # Every input still open is idle (the others ended): hold where we are until one
            # speaks again; jumping to MAX would make all it sends later late.
            return None
        candidate = min(active)
        if candidate > self.current:
            self.current = candidate
            return candidate
        return None


__all__ = ["BoundedOutOfOrderness", "WatermarkTracker", "MAX_WATERMARK", "MIN_WATERMARK"]
