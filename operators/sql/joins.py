"""Planning SQL joins onto the engine's joins, by what the condition says:

- ``JOIN t FOR SYSTEM_TIME AS OF l.ts ON keys`` -> as-of (temporal) join;
- both sides windowed, equal on window_start and window_end (and keys) -> window join;
- equal keys plus bounds between the two event times -> interval join;
- equal keys alone -> regular join (unbounded state; its result has no event time).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from engine.errors import CitystreamError
from engine.expr import Expr
from operators.join.common import join_schema, right_columns
from operators.sql.expressions import ExpressionCompiler, Field, Scope
from operators.sql.types import interval_ms

if TYPE_CHECKING:
    from operators.sql.planner import Planner, Relation

SUPPORTED_JOINS = (
    "temporal: JOIN t FOR SYSTEM_TIME AS OF l.ts ON l.k = t.k; "
    "interval: JOIN t ON l.k = t.k AND l.ts BETWEEN t.ts - INTERVAL '5' SECOND AND t.ts; "
    "window: both sides windowed, ON l.window_start = r.window_start AND l.window_end = r.window_end [AND keys]; "
    "regular: JOIN t ON l.k = t.k"
)
_FLIP = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}


@dataclass
class _Bounds:
    """lower <= left time - right time <= upper, in ms (None: unbounded)."""

    lower: int | None = None
    upper: int | None = None

    def add(self, op: type, difference: int) -> None:
        # left + a  OP  right + b   <=>   left - right  OP  b - a  (= difference)
        if op is exp.GTE:
            self.lower = difference if self.lower is None else max(self.lower, difference)
        elif op is exp.GT:
            self.add(exp.GTE, difference + 1)
        elif op is exp.LTE:
            self.upper = difference if self.upper is None else min(self.upper, difference)
        elif op is exp.LT:
            self.add(exp.LTE, difference - 1)


def plan_join(
    planner: Planner, left: Relation, node: exp.Join, where: list[exp.Expr], select: exp.Select | None = None
) -> tuple[Relation, list[exp.Expr]]:
    src = planner.src
    side = (node.side or "").upper()
    kind = (node.kind or "").upper()
    if node.args.get("using"):
        raise src.error("JOIN ... USING is not supported", node, "write ON a.k = b.k")
    on = node.args.get("on")
    if kind == "CROSS" or on is None:
        raise src.error("a join needs ON with an equality between the two sides", node, f"supported joins: {SUPPORTED_JOINS}")
    right_item = node.this
    version = right_item.args.get("version") if isinstance(right_item, exp.Table) else None
    if version is not None:
        right_item = right_item.copy()
        right_item.set("version", None)
    right = planner._from_item(right_item)
    if left.pending is not None:
        left = planner._materialize(left, node)
    if right.pending is not None:
        right = planner._materialize(right, node)
    if select is not None:
        # Only the columns the query names go into the join's state and its output pairs.
        left, right = _pruned(planner, left, select), _pruned(planner, right, select)
    if left.updating is not None or right.updating is not None:
        raise src.error(
            "joins of updating (non-windowed GROUP BY) results are not supported", node, f"supported joins: {SUPPORTED_JOINS}"
        )
    from operators.sql.planner import _conjuncts

    conjuncts = _conjuncts(on)
    remaining_where: list[exp.Expr] = []
    offered = where if side in ("", "INNER") else []
    if not offered:
        remaining_where = list(where)  # after an outer join, WHERE filters the joined rows
    equi: list[tuple[Field, Field, exp.Expr]] = []
    bounds = _Bounds()
    bound_nodes: list[exp.Expr] = []
    residual: list[exp.Expr] = []
    for conjunct, from_where in [(c, False) for c in conjuncts] + [(c, True) for c in offered]:
        pair = _equality(planner, left, right, conjunct)
        if pair is not None and not from_where:
            equi.append((*pair, conjunct))
            continue
        if version is None and _time_bound(planner, left, right, conjunct, bounds):
            bound_nodes.append(conjunct)
            continue
        (remaining_where if from_where else residual).append(conjunct)
    if not equi:
        raise src.error(
            "a join needs at least one equality between a column of each side", on, f"supported joins: {SUPPORTED_JOINS}"
        )
    if side in ("", "INNER"):
        # A condition on one side only filters that side before the join (less state, fewer
        # pairs). Not the versioned side of a temporal join: filtering it would pick an older
        # version where the query asks for the latest one and a failed condition.
        pushed: dict[str, list[exp.Expr]] = {"L": [], "R": []}
        for conditions in (residual, remaining_where):
            for conjunct in list(conditions):
                sides = _side_of(planner, left, right, conjunct)
                if len(sides) == 1 and not (sides == {"R"} and version is not None):
                    pushed[next(iter(sides))].append(conjunct)
                    conditions.remove(conjunct)
        if pushed["L"]:
            left = planner._filter(left, pushed["L"], node)
        if pushed["R"]:
            right = planner._filter(right, pushed["R"], node)
    name = planner._op_name("join")
    prefix = f"__r{name.rsplit('_', 1)[-1]}_"
    if version is not None:
        return _temporal(planner, left, right, node, side, version, equi, residual, name, prefix), remaining_where
    windowed = left.window is not None and right.window is not None
    window_pairs = [
        (lf, rf, c)
        for lf, rf, c in equi
        if windowed and (lf.physical, rf.physical) in tuple(zip(left.window, right.window, strict=True))  # type: ignore[arg-type]
    ]
    if len(window_pairs) == 2:
        keys = [(lf, rf, c) for lf, rf, c in equi if (lf, rf, c) not in window_pairs]
        return _window_join(planner, left, right, node, side, keys, residual, name, prefix), remaining_where
    if side not in ("", "INNER"):
        raise src.error(
            f"{side} JOIN is supported for window joins and temporal joins only", node, f"supported joins: {SUPPORTED_JOINS}"
        )
    if bound_nodes:
        if bounds.lower is None or bounds.upper is None:
            raise src.error(
                "an interval join needs a lower and an upper bound between the two event times",
                bound_nodes[0],
                "for example l.ts BETWEEN r.ts - INTERVAL '5' SECOND AND r.ts",
            )
        if bounds.lower > bounds.upper:
            raise src.error(f"the time bounds of this join are empty ({bounds.lower} > {bounds.upper} ms)", bound_nodes[0])
        return _interval(planner, left, right, node, equi, bounds, residual, name, prefix), remaining_where
    return _regular(planner, left, right, node, equi, residual, name, prefix), remaining_where


def _pruned(planner: Planner, relation: Relation, select: exp.Select) -> Relation:
    """The relation with only the columns ``select`` may name (by name, and by qualifier where
    it gives one), its event time and window columns; all of them after a ``*``."""
    if any(isinstance(star, exp.Star) for star in select.find_all(exp.Star)):
        return relation
    named: dict[str, set[str | None]] = {}
    for column in select.find_all(exp.Column):
        named.setdefault(column.name.lower(), set()).add(column.table.lower() if column.table else None)
    keep = []
    for f in relation.fields:
        qualifiers = named.get(f.name.lower(), set())
        if None in qualifiers or (f.qualifier is not None and f.qualifier.lower() in qualifiers):
            keep.append(f)
    physical = {f.physical for f in keep} | set(relation.window or ()) | ({relation.time} if relation.time else set())
    if physical >= set(relation.schema.names):
        return relation
    columns = {name: _col(name) for name in relation.schema.names if name in physical}
    with planner._located(select):
        stream = relation.stream.project(columns, planner._op_name("join_columns"))
    fields = [f for f in relation.fields if f.physical in physical]
    return replace(relation, stream=stream, fields=fields)


def _side_of(planner: Planner, left: Relation, right: Relation, node: exp.Expr) -> set[str]:
    sides = set()
    for column in node.find_all(exp.Column):
        sides.add(_resolve_side(planner, left, right, column)[0])
    return sides


def _resolve_side(planner: Planner, left: Relation, right: Relation, column: exp.Column) -> tuple[str, Field]:
    found = []
    for label, relation in (("L", left), ("R", right)):
        try:
            found.append((label, relation.scope().resolve(planner.src, column)))
        except CitystreamError:
            continue
    if len(found) == 1:
        return found[0]
    combined = Scope(left.fields + right.fields, pa.schema([]), context="the join")
    combined.resolve(planner.src, column)  # raises: unknown or ambiguous, with the columns in scope
    raise AssertionError


def _equality(planner: Planner, left: Relation, right: Relation, node: exp.Expr) -> tuple[Field, Field] | None:
    if not isinstance(node, exp.EQ) or not isinstance(node.this, exp.Column) or not isinstance(node.expression, exp.Column):
        return None
    a, b = _resolve_side(planner, left, right, node.this), _resolve_side(planner, left, right, node.expression)
    if a[0] == b[0]:
        return None
    lf, rf = (a[1], b[1]) if a[0] == "L" else (b[1], a[1])
    return lf, rf


def _time_operand(planner: Planner, left: Relation, right: Relation, node: exp.Expr) -> tuple[str, int] | None:
    """``side.time [+|- INTERVAL]`` as (side, offset ms), or None."""
    offset = 0
    if isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, (exp.Add, exp.Sub)) and isinstance(node.expression, exp.Interval):
        ms = interval_ms(node.expression)
        if ms is None:
            return None
        offset = ms if isinstance(node, exp.Add) else -ms
        node = node.this
    if not isinstance(node, exp.Column):
        return None
    try:
        label, f = _resolve_side(planner, left, right, node)
    except CitystreamError:
        return None
    relation = left if label == "L" else right
    if f.physical != relation.time:
        return None
    return label, offset


def _time_bound(planner: Planner, left: Relation, right: Relation, node: exp.Expr, bounds: _Bounds) -> bool:
    if isinstance(node, exp.Between):
        low = exp.GTE(this=node.this, expression=node.args["low"])
        high = exp.LTE(this=node.this, expression=node.args["high"])
        probe = _Bounds(bounds.lower, bounds.upper)
        if _time_bound(planner, left, right, low, probe) and _time_bound(planner, left, right, high, probe):
            bounds.lower, bounds.upper = probe.lower, probe.upper
            return True
        return False
    op = type(node)
    if op not in _FLIP:
        return False
    a = _time_operand(planner, left, right, node.this)  # type: ignore[attr-defined]
    b = _time_operand(planner, left, right, node.expression)  # type: ignore[attr-defined]
    if a is None or b is None or a[0] == b[0]:
        return False
    if a[0] == "R":
        a, b, op = b, a, _FLIP[op]
    bounds.add(op, b[1] - a[1])
    return True


def _keyed(
    planner: Planner, left: Relation, right: Relation, equi: list[tuple[Field, Field, exp.Expr]]
) -> tuple[list[str], list[str]]:
    for lf, rf, node in equi:
        lt, rt = left.schema.field(lf.physical).type, right.schema.field(rf.physical).type
        if lt != rt:
            raise planner.src.error(f"the join keys have different types: {lt} and {rt}", node, "CAST one side in a view")
    return [lf.physical for lf, _, _ in equi], [rf.physical for _, rf, _ in equi]


def _joined(
    left: Relation, right: Relation, stream: object, dropped: dict[str, str], prefix: str, window: tuple[str, str] | None
) -> Relation:
    from operators.sql.planner import Relation

    # The engine names the right's columns (operators/join/common.right_columns); the dropped
    # ones (keys equal to the left's) are read from the left's columns.
    named = dict(right_columns("join", left.schema, right.schema, list(dropped), prefix)) | dropped
    fields = list(left.fields) + [replace(f, physical=named[f.physical]) for f in right.fields]
    return Relation(stream, fields, window=window)  # type: ignore[arg-type]


def _filter_residual(planner: Planner, relation: Relation, residual: list[exp.Expr], node: exp.Expr) -> Relation:
    if not residual:
        return relation
    return planner._filter(relation, residual, node)


def _temporal(planner, left, right, node, side, version, equi, residual, name, prefix) -> Relation:  # type: ignore[no-untyped-def]
    src = planner.src
    if side not in ("", "INNER", "LEFT"):
        raise src.error(f"{side} JOIN is not supported for temporal joins", node, "use JOIN or LEFT JOIN")
    if (version.args.get("kind") or "").upper() != "AS OF" or not isinstance(version.expression, exp.Column):
        raise src.error("write FOR SYSTEM_TIME AS OF <left event-time column>", version)
    label, f = _resolve_side(planner, left, right, version.expression)
    if label != "L" or f.physical != left.time:
        raise src.error("FOR SYSTEM_TIME AS OF must name the left side's event-time column", version.expression)
    if right.time is None:
        raise src.error("the versioned table of a temporal join needs an event-time column (WATERMARK)", node.this)
    if residual and side == "LEFT":
        raise src.error("a LEFT temporal join takes only key equalities in ON", residual[0], "filter in WHERE")
    left_keys, right_keys = _keyed(planner, left, right, equi)
    with planner._located(node):
        stream = left.stream.key_by(*left_keys).asof_join(right.stream.key_by(*right_keys), right_prefix=prefix, name=name)
    dropped = dict(zip(right_keys, left_keys, strict=True))
    right_time = prefix + right.time if right.time in set(left.schema.names) else right.time
    if side == "LEFT":
        # The right's keys equal the left's where a version matched, and are NULL where none did.
        matched = _col(right_time).is_valid()
        columns: dict[str, Expr] = {n: _col(n) for n in stream.schema.names}
        for i, (rk, lk) in enumerate(dropped.items()):
            own = f"{prefix}key{i}"
            columns[own] = _if_matched(matched, lk, stream.schema.field(lk).type)
            dropped[rk] = own
        with planner._located(node):
            stream = stream.project(columns, planner._op_name("right_keys"))
    joined = _joined(left, right, stream, dropped, prefix, None)
    if side != "LEFT":
        # The engine's as-of join keeps unmatched left rows (nulls on the right): INNER drops them.
        with planner._located(node):
            joined = replace(joined, stream=joined.stream.filter(_col(right_time).is_valid(), name=planner._op_name("matched")))
    return _filter_residual(planner, joined, residual, node)


def _interval(planner, left, right, node, equi, bounds, residual, name, prefix) -> Relation:  # type: ignore[no-untyped-def]
    left_keys, right_keys = _keyed(planner, left, right, equi)
    with planner._located(node):
        stream = left.stream.key_by(*left_keys).interval_join(
            right.stream.key_by(*right_keys), lower=bounds.lower, upper=bounds.upper, right_prefix=prefix, name=name
        )
    joined = _joined(left, right, stream, dict(zip(right_keys, left_keys, strict=True)), prefix, None)
    return _filter_residual(planner, joined, residual, node)


def _regular(planner, left, right, node, equi, residual, name, prefix) -> Relation:  # type: ignore[no-untyped-def]
    left_keys, right_keys = _keyed(planner, left, right, equi)
    ttl = planner.options.state_ttl_ms
    with planner._located(node):
        stream = left.stream.key_by(*left_keys).join(right.stream.key_by(*right_keys), ttl=ttl, right_prefix=prefix, name=name)
    joined = _joined(left, right, stream, dict(zip(right_keys, left_keys, strict=True)), prefix, None)
    return _filter_residual(planner, joined, residual, node)


def _window_join(planner, left, right, node, side, keys, residual, name, prefix) -> Relation:  # type: ignore[no-untyped-def]
    how = {"": "inner", "INNER": "inner", "LEFT": "left", "RIGHT": "right", "FULL": "full"}.get(side)
    if how is None:
        raise planner.src.error(f"{side} JOIN is not supported", node)
    left_keys, right_keys = _keyed(planner, left, right, keys)
    # Residual conditions are evaluated on the joined rows, inside the join for outer joins.
    condition = None
    dropped = dict(zip(right_keys, left_keys, strict=True))
    dropped.update(dict(zip(right.window, left.window, strict=True)))
    if how in ("left", "full"):
        dropped = {}  # the right keeps its own keys and window: NULL where no right row matched
    if residual:
        with planner._located(node):
            preview = _joined(left, right, None, dropped, prefix, None)
            pairs = right_columns("join", left.schema, right.schema, list(dropped), prefix)
        scope = Scope(preview.fields, join_schema(left.schema, right.schema, pairs), context="ON")
        condition = ExpressionCompiler(planner.src, scope).condition(residual, "ON")
    with planner._located(node):
        left_stream = left.stream.key_by(*left_keys) if left_keys else left.stream
        right_stream = right.stream.key_by(*right_keys) if right_keys else right.stream
        stream = left_stream.window_join(
            right_stream,
            left_window=left.window,
            right_window=right.window,
            condition=condition,
            how=how,
            right_prefix=prefix,
            name=name,
            keep_right_keys=how in ("left", "full"),
        )
    return _joined(left, right, stream, dropped, prefix, left.window)


def _if_matched(matched: Expr, column: str, data_type: pa.DataType) -> Expr:
    from engine.expr import Call, Literal

    return Call("if_else", (matched, _col(column), Literal(pa.scalar(None, data_type))))


def _col(name: str) -> Expr:
    from engine.expr import col

    return col(name)
