"""SQL types and their Arrow types; SQL intervals as milliseconds."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
from sqlglot import exp

from engine.timeutil import EVENT_TIME_TYPE

_TYPES: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(),
    "INT": pa.int32(),
    "INTEGER": pa.int32(),
    "SMALLINT": pa.int16(),
    "TINYINT": pa.int8(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "REAL": pa.float32(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR": pa.string(),
    "CHAR": pa.string(),
    "NCHAR": pa.string(),
    "NVARCHAR": pa.string(),
    "TEXT": pa.string(),
    "STRING": pa.string(),
    "TIMESTAMP": EVENT_TIME_TYPE,
    "TIMESTAMPTZ": EVENT_TIME_TYPE,
    "TIMESTAMPLTZ": EVENT_TIME_TYPE,
    "TIMESTAMP_LTZ": EVENT_TIME_TYPE,
    "DATE": pa.date32(),
}
SUPPORTED_TYPES = (
    "BIGINT, INT, SMALLINT, TINYINT, DOUBLE, FLOAT, BOOLEAN, VARCHAR/STRING, TIMESTAMP(3), TIMESTAMP_LTZ(3), DATE, DECIMAL(p, s)"
)

_UNIT_MS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}
SUPPORTED_UNITS = "MILLISECOND, SECOND, MINUTE, HOUR, DAY"


def arrow_type(data_type: exp.DataType) -> pa.DataType | None:
    """The Arrow type of a SQL type, or None if citystream does not support it. Every
    timestamp is stored as timestamp[ms, UTC], the engine's event-time type."""
    name = data_type.this.name if hasattr(data_type.this, "name") else str(data_type.this)
    if name in ("DECIMAL", "NUMERIC"):
        params = [int(p.this.this) for p in data_type.expressions] if data_type.expressions else [38, 18]
        precision, scale = (params + [0])[:2]
        return pa.decimal128(precision, scale)
    return _TYPES.get(name)


def interval_ms(node: exp.Interval) -> int | None:
    """``INTERVAL '10' SECOND`` (or ``INTERVAL '10 seconds'``) in milliseconds; None if the
    unit or amount is not understood."""
    amount = node.this.name if node.this is not None else ""
    unit = node.unit.name.upper() if node.unit is not None else ""
    if not unit and " " in amount.strip():
        amount, unit = amount.strip().split(None, 1)
    unit = unit.upper().rstrip("S") if unit.upper() not in _UNIT_MS else unit.upper()
    if unit not in _UNIT_MS:
        return None
    try:
        value = float(amount)
    except ValueError:
        return None
    return round(value * _UNIT_MS[unit])


def duration_scalar(ms: int) -> pa.Scalar:
    return pa.scalar(timedelta(milliseconds=ms), pa.duration("ms"))
