"""What the joins share: the output schema (left columns, then the right's, renamed on clash)."""

from __future__ import annotations

import pyarrow as pa

from engine.errors import PlanError


def right_columns(operator: str, left: pa.Schema, right: pa.Schema, right_keys: list[str], prefix: str) -> list[tuple[str, str]]:
    """(right column, output name) for every right column but the keys; a name the left
    already has gets ``prefix``."""
    pairs = []
    for name in right.names:
        if name in right_keys:
            continue
        out = prefix + name if name in left.names else name
        if out in left.names:
            raise PlanError(
                operator, f"right column '{name}' would be named '{out}', which the left has; choose another right_prefix", name
            )
        pairs.append((name, out))
    return pairs


def check_keys(operator: str, left: pa.Schema, right: pa.Schema, left_keys: list[str], right_keys: list[str]) -> None:
    """The key columns exist on both sides, pairwise of the same type."""
    if not left_keys or len(left_keys) != len(right_keys):
        raise PlanError(
            operator, f"both sides need the same number of keys (left {left_keys}, right {right_keys}); use key_by on both"
        )
    for lk, rk in zip(left_keys, right_keys, strict=True):
        for side, schema, key in (("left", left, lk), ("right", right, rk)):
            if schema.get_field_index(key) < 0:
                raise PlanError(operator, f"{side} key column does not exist; columns are {schema.names}", key)
        if left.field(lk).type != right.field(rk).type:
            raise PlanError(
                operator,
                f"key types differ: left '{lk}' is {left.field(lk).type}, right '{rk}' is {right.field(rk).type}",
                rk,
            )


def join_schema(left: pa.Schema, right: pa.Schema, pairs: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema(list(left) + [right.field(name).with_name(out) for name, out in pairs])
