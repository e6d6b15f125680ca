"""Windows on event time: tumbling, hopping and session, keyed or global, with aggregates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.errors import PlanError
from engine.operator import Operator
from engine.timeutil import Duration, to_millis
from operators.window.aggregates import Agg, TwoPhaseAggregate, agg, normalize_aggs
from operators.window.binned import BinnedWindow
from operators.window.common import window_output_schema
from operators.window.hopping import Hopping
from operators.window.session import SessionWindow
from operators.window.tumbling import Tumbling


@dataclass(frozen=True)
class Session:
    """Per key, rows less than ``gap`` apart form one window [first, last + gap)."""

    gap: Duration
    allowed_lateness: Duration = 0


def build_window(
    operator: str,
    spec: Any,
    keys: list[str],
    aggregates: dict[str, tuple[str, str | None]] | list[Agg],
    schema: pa.Schema,
    time_column: str,
) -> tuple[Callable[[], Operator], pa.Schema]:
    """Checks a window definition against the input schema; returns its factory and schema."""
    aggs = normalize_aggs(aggregates)
    if not aggs:
        raise PlanError(operator, "a window needs at least one aggregate")
    aggregate = TwoPhaseAggregate(operator, aggs, schema, time_column)
    key_fields = [schema.field(k) for k in keys]
    out_schema = window_output_schema(key_fields, aggregate.output_fields)
    clash = [f.name for f in aggregate.output_fields if f.name in keys or out_schema.names.count(f.name) > 1]
    if clash:
        raise PlanError(operator, "an aggregate's name clashes with a key or window column", clash[0])
    lateness = to_millis(spec.allowed_lateness, "allowed_lateness")
    if isinstance(spec, Tumbling):
        size = to_millis(spec.size, "size", allow_zero=False)
        return (lambda: BinnedWindow(keys, aggregate, size, size, lateness, time_column, out_schema)), out_schema
    if isinstance(spec, Hopping):
        size = to_millis(spec.size, "size", allow_zero=False)
        slide = to_millis(spec.slide, "slide", allow_zero=False)
        if slide > size:
            raise PlanError(operator, f"slide ({slide} ms) is longer than size ({size} ms): rows between windows would be lost")
        return (lambda: BinnedWindow(keys, aggregate, size, slide, lateness, time_column, out_schema)), out_schema
    if isinstance(spec, Session):
        gap = to_millis(spec.gap, "gap", allow_zero=False)
        return (lambda: SessionWindow(keys, aggregate, gap, lateness, time_column, out_schema)), out_schema
    raise PlanError(operator, f"unknown window {spec!r}; use Tumbling, Hopping or Session")


__all__ = ["Tumbling", "Hopping", "Session", "agg", "Agg", "build_window"]
