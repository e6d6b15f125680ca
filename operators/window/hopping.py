"""Hopping (sliding) windows: windows of ``size`` starting every ``slide``."""

from __future__ import annotations

from dataclasses import dataclass

from engine.timeutil import Duration


@dataclass(frozen=True)
class Hopping:
    """Windows [k * slide, k * slide + size): each row is in about size / slide windows."""

    size: Duration
    slide: Duration
    allowed_lateness: Duration = 0
