"""Operators on Arrow batches: map/filter/project, windows with aggregates, joins."""

from operators.window import Hopping, Session, Tumbling, agg

__all__ = ["Tumbling", "Hopping", "Session", "agg"]
