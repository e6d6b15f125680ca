"""Joins of two keyed streams on event time: as-of (temporal) and interval."""
