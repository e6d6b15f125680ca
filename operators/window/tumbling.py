"""Tumbling windows: fixed, non-overlapping windows of ``size``."""

from __future__ import annotations

from dataclasses import dataclass

from engine.timeutil import Duration


@dataclass(frozen=True)
class Tumbling:
    """Windows [k * size, (k + 1) * size) of event time.

    Example:
        >>> from datetime import timedelta
        >>> Tumbling(timedelta(seconds=10), allowed_lateness=timedelta(seconds=5))
        Tumbling(size=datetime.timedelta(seconds=10), allowed_lateness=datetime.timedelta(seconds=5))
    """

    size: Duration
    allowed_lateness: Duration = 0
