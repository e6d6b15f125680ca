"""Event-time representation: every stream's time column is timestamp[ms, UTC]; durations are ms."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import OptionError

EVENT_TIME_TYPE = pa.timestamp("ms", tz="UTC")
# Watermark of an input that has ended: later than any event time.
MAX_WATERMARK = 2**63 - 1
MIN_WATERMARK = -(2**63)

Duration = timedelta | int
"""A duration: a ``timedelta`` or an integer number of milliseconds."""


def to_millis(value: Duration, option: str, *, allow_zero: bool = True) -> int:
    """Converts a duration option to integer milliseconds, rejecting negative values."""
    if isinstance(value, bool) or not isinstance(value, (timedelta, int)):
        raise OptionError(option, value, "a timedelta or an integer number of milliseconds")
    millis = value if isinstance(value, int) else int(value / timedelta(milliseconds=1))
    if millis < 0 or (millis == 0 and not allow_zero):
        raise OptionError(option, value, "a positive duration" if not allow_zero else "a duration >= 0")
    return millis


def time_values(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The event-time column as int64 milliseconds (zero-copy for timestamp[ms])."""
    return column.cast(pa.int64())


def is_time_type(data_type: pa.DataType) -> bool:
    """Whether a column of this type can be an event-time column (after normalisation)."""
    return (
        pa.types.is_timestamp(data_type)
        or pa.types.is_integer(data_type)
        or pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_date(data_type)
    )


def normalize_event_time(column: pa.Array, time_format: str | None = None) -> tuple[pa.Array, pa.Array | None]:
    """Converts a raw time column to timestamp[ms, UTC].

    Integers are epoch milliseconds; strings are parsed with ``time_format`` (strptime
    syntax) or as ISO 8601 when none is given; naive timestamps are taken as UTC.

    Returns:
        The normalised column, with null where a value was null or unparseable, and a
        boolean mask of rows that were present but could not be parsed (None if none).
    """
    data_type = column.type
    if pa.types.is_timestamp(data_type):
        if data_type.unit == "ms" and data_type.tz == "UTC":
            return column, None
        if data_type.tz is None:
            column = column.cast(pa.timestamp(data_type.unit, "UTC"))
        return column.cast(EVENT_TIME_TYPE, safe=False), None
    if pa.types.is_integer(data_type):
        return column.cast(pa.int64()).cast(EVENT_TIME_TYPE), None
    if pa.types.is_date(data_type):
        return column.cast(pa.timestamp("ms")).cast(EVENT_TIME_TYPE), None
    # Strings: parse, turning failures into nulls so that they can go to the dead letter.
    if time_format is not None:
        parsed = pc.strptime(column, format=time_format, unit="ms", error_is_null=True)
    else:
        parsed = _parse_iso8601(column)
    if parsed.type.tz is None:
        parsed = parsed.cast(pa.timestamp("ms", "UTC"))
    parsed = parsed.cast(EVENT_TIME_TYPE, safe=False)
    unparseable = pc.and_(pc.is_valid(column), pc.is_null(parsed))
    return parsed, unparseable


def _parse_iso8601(column: pa.Array) -> pa.Array:
    # ISO 8601 with an offset casts to a zoned timestamp, without one to a naive one (UTC).
    for target in (pa.timestamp("ms"), pa.timestamp("ms", "UTC")):
        try:
            return column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # Some values do not parse, or the shapes are mixed. This is the error path (rows bound
    # for the dead letter), so a loop over the values is acceptable: each is cast on its own.
    values = [_parse_one(value.as_py()) for value in column]
    return pa.array(values, pa.timestamp("ms", "UTC"))


def _parse_one(text: str | None) -> pa.Scalar | None:
    if text is None:
        return None
    for target in (pa.timestamp("ms"), pa.timestamp("ms", "UTC")):
        try:
            return pa.array([text]).cast(target).cast(pa.timestamp("ms", "UTC"))[0]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return None


def clamp(value: int) -> int:
    """Keeps watermark arithmetic inside int64 (MAX_WATERMARK + x stays MAX_WATERMARK)."""
    return max(MIN_WATERMARK, min(MAX_WATERMARK, value))
