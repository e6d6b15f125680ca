"""SQL scalar expressions compiled to the engine's expressions (``engine.expr``), type-checked
against the schema of the relation they read, column by column."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from engine.expr import Call, Expr, ExprError, Literal, call, col, lit
from engine.timeutil import EVENT_TIME_TYPE
from operators.sql.errors import SourceText
from operators.sql.types import SUPPORTED_TYPES, SUPPORTED_UNITS, arrow_type, duration_scalar, interval_ms


@dataclass
class Field:
    """A column as SQL sees it (``qualifier.name``) and where it is in the stream (``physical``)."""

    name: str
    physical: str
    qualifier: str | None
    type: pa.DataType


@dataclass
class Scope:
    """The columns an expression may name, and expressions already computed into columns
    (group keys and aggregates after a GROUP BY, by their SQL text)."""

    fields: list[Field]
    schema: pa.Schema
    computed: dict[str, str] = field(default_factory=dict)
    context: str = "this query"

    def resolve(self, src: SourceText, node: exp.Column) -> Field:
        name, qualifier = node.name, node.table or None
        candidates = [f for f in self.fields if f.name.lower() == name.lower()]
        if qualifier:
            candidates = [f for f in candidates if f.qualifier is not None and f.qualifier.lower() == qualifier.lower()]
        exact = [f for f in candidates if f.name == name]
        if len(exact) == 1:
            return exact[0]
        if len(candidates) == 1:
            return candidates[0]
        shown = ", ".join(self.display_names()) or "none"
        if not candidates:
            what = f"{qualifier}.{name}" if qualifier else name
            if qualifier and not any(f.qualifier and f.qualifier.lower() == qualifier.lower() for f in self.fields):
                tables = sorted({f.qualifier for f in self.fields if f.qualifier})
                raise src.error(f"unknown table or alias '{qualifier}'", node, f"tables in scope: {', '.join(tables) or 'none'}")
            raise src.error(f"unknown column '{what}' in {self.context}", node, f"columns in scope: {shown}")
        raise src.error(
            f"column '{name}' is ambiguous: {len(candidates)} columns of {self.context} have this name"
            + (
                f" (in {', '.join(sorted({f.qualifier for f in candidates if f.qualifier}))})"
                if any(f.qualifier for f in candidates)
                else ""
            ),
            node,
            "qualify it with its table or alias",
        )

    def display_names(self) -> list[str]:
        return [f"{f.qualifier}.{f.name}" if f.qualifier else f.name for f in self.fields]


def sql_key(node: exp.Expr) -> str:
    """The text of an expression, to recognise the same expression in SELECT and GROUP BY."""
    while isinstance(node, exp.Paren):
        node = node.this
    return node.sql(comments=False).lower()


_COMPARISONS: dict[type, str] = {
    exp.EQ: "equal",
    exp.NEQ: "not_equal",
    exp.GT: "greater",
    exp.GTE: "greater_equal",
    exp.LT: "less",
    exp.LTE: "less_equal",
}
_ARITHMETIC: dict[type, str] = {exp.Add: "add", exp.Sub: "subtract", exp.Mul: "multiply", exp.Div: "divide"}
_UNARY = {
    "ABS": "abs",
    "SQRT": "sqrt",
    "LN": "ln",
    "LOG10": "log10",
    "EXP": "exp",
    "SIGN": "sign",
    "UPPER": "utf8_upper",
    "LOWER": "utf8_lower",
    "LENGTH": "utf8_length",
    "CHAR_LENGTH": "utf8_length",
    "CHARACTER_LENGTH": "utf8_length",
    "TRIM": "utf8_trim_whitespace",
    "LTRIM": "utf8_ltrim_whitespace",
    "RTRIM": "utf8_rtrim_whitespace",
    "INITCAP": "utf8_title",
    "YEAR": "year",
    "MONTH": "month",
    "DAY": "day",
    "DAYOFMONTH": "day",
    "HOUR": "hour",
    "MINUTE": "minute",
    "SECOND": "second",
    "MILLISECOND": "millisecond",
    "DAYOFYEAR": "day_of_year",
    "QUARTER": "quarter",
    "WEEK": "iso_week",
}
_EXTRACT = {
    "YEAR": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "WEEK": "iso_week",
    "DAY": "day",
    "DOY": "day_of_year",
    "DOW": "day_of_week",
    "HOUR": "hour",
    "MINUTE": "minute",
    "SECOND": "second",
    "MILLISECOND": "millisecond",
    "EPOCH": "epoch",
}
SUPPORTED_FUNCTIONS = (
    "arithmetic + - * / % and MOD, comparisons, AND/OR/NOT, IS [NOT] NULL, [NOT] IN (...), [NOT] BETWEEN, [NOT] LIKE, "
    "CASE, IF, COALESCE, NULLIF, CAST, GREATEST, LEAST; "
    "math: ABS, ROUND, FLOOR, CEIL, SQRT, POWER, LN, LOG10, EXP, SIGN; "
    "string: UPPER, LOWER, CHAR_LENGTH, SUBSTRING, CONCAT and ||, TRIM, LTRIM, RTRIM, REPLACE, INITCAP, STARTS_WITH; "
    "time: EXTRACT(unit FROM ts), YEAR, MONTH, DAY, HOUR, MINUTE, SECOND, DATE_FORMAT, FLOOR(ts TO unit), CEIL(ts TO unit), "
    "ts +/- INTERVAL"
)
_JAVA_TIME_PATTERN = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]
_TEMPORAL_UNITS = {"SECOND": "second", "MINUTE": "minute", "HOUR": "hour", "DAY": "day", "MILLISECOND": "millisecond"}


class ExpressionCompiler:
    """Compiles one sqlglot expression tree over a :class:`Scope`.

    ``aggregate`` is called for aggregate calls (COUNT, SUM...) when the caller collects or
    substitutes them; without it an aggregate is an error ("only with GROUP BY or a window").
    """

    def __init__(
        self,
        src: SourceText,
        scope: Scope,
        aggregate: Callable[[exp.AggFunc], Expr] | None = None,
    ) -> None:
        self.src = src
        self.scope = scope
        self.aggregate = aggregate

    def compile(self, node: exp.Expr) -> Expr:
        expr = self._compile(node)
        self.type_of(expr, node)
        return expr

    def condition(self, conjuncts: list[exp.Expr], clause: str) -> Expr:
        """The AND of boolean conditions (WHERE, ON, HAVING); a non-boolean one is an error."""
        predicate: Expr | None = None
        for conjunct in conjuncts:
            part = self.compile(conjunct)
            if self.type_of(part, conjunct) not in (pa.bool_(), pa.null()):
                raise self.src.error(f"{clause} needs a boolean condition", conjunct)
            predicate = part if predicate is None else predicate & part
        assert predicate is not None, "no condition to compile"
        return predicate

    def type_of(self, expr: Expr, node: exp.Expr) -> pa.DataType:
        try:
            return expr.output_type(self.scope.schema)
        except (ExprError, pa.ArrowException, TypeError) as exc:
            operands = self._operand_types(expr)
            if operands:
                what = f"{_OPERATION.get(type(node), node.key.upper())} does not apply to {' and '.join(operands)}"
                raise self.src.error(f"types do not fit: {what}", node) from None
            raise self.src.error(f"types do not fit: {_plain(exc)}", node) from None

    def _operand_types(self, expr: Expr) -> list[str]:
        """The SQL types of a call's arguments, where they have one (for an error message)."""
        if not isinstance(expr, Call):
            return []
        names = []
        for arg in expr.args:
            try:
                names.append(sql_type_name(arg.output_type(self.scope.schema)))
            except (ExprError, pa.ArrowException, TypeError):
                return []
        return names

    # ---- the tree ------------------------------------------------------------------------

    def _compile(self, node: exp.Expr) -> Expr:
        computed = self.scope.computed.get(sql_key(node))
        if computed is not None:
            return col(computed)
        if isinstance(node, exp.Paren):
            return self._compile(node.this)
        if isinstance(node, exp.Alias):
            return self._compile(node.this)
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise self.src.error("'*' is only allowed as a whole SELECT item or in COUNT(*)", node)
            return col(self.scope.resolve(self.src, node).physical)
        if isinstance(node, exp.Literal):
            return self._literal(node)
        if isinstance(node, exp.Boolean):
            return lit(bool(node.this))
        if isinstance(node, exp.Null):
            return Literal(pa.scalar(None, pa.null()))
        if isinstance(node, exp.Interval):
            return Literal(duration_scalar(self._interval(node)))
        if isinstance(node, exp.AggFunc):
            if self.aggregate is None:
                raise self.src.error(
                    f"aggregate {node.key.upper()} is not allowed here",
                    node,
                    "aggregates belong in SELECT or HAVING of a GROUP BY",
                )
            return self.aggregate(node)
        if isinstance(node, tuple(_COMPARISONS)):
            left, right = self._compile(node.this), self._compile(node.expression)
            return self._checked(node, Call(_COMPARISONS[type(node)], (left, right)))
        if isinstance(node, exp.Mod):
            return self._checked(node, self._mod(node, self._compile(node.this), self._compile(node.expression)))
        if isinstance(node, tuple(_ARITHMETIC)):
            left, right = self._compile(node.this), self._compile(node.expression)
            return self._checked(node, Call(_ARITHMETIC[type(node)], (left, right)))
        if isinstance(node, exp.Neg):
            return self._checked(node, call("negate", self._compile(node.this)))
        if isinstance(node, exp.And):
            return self._checked(node, self._boolean(node.this) & self._boolean(node.expression))
        if isinstance(node, exp.Or):
            return self._checked(node, self._boolean(node.this) | self._boolean(node.expression))
        if isinstance(node, exp.Not):
            if isinstance(node.this, exp.Is):
                return self._checked(node, call("is_valid", self._compile(node.this.this)))
            return self._checked(node, call("invert", self._boolean(node.this)))
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise self.src.error("only IS NULL and IS NOT NULL are supported", node)
            return self._checked(node, call("is_null", self._compile(node.this)))
        if isinstance(node, exp.Between):
            value = self._compile(node.this)
            return self._checked(node, (value >= self._compile(node.args["low"])) & (value <= self._compile(node.args["high"])))
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, (exp.Like, exp.ILike)):
            return self._like(node)
        if isinstance(node, exp.Case):
            return self._case(node)
        if isinstance(node, exp.If):
            return self._if_else(node, [(node.this, node.args["true"])], node.args.get("false"))
        if isinstance(node, exp.TryCast):
            raise self.src.error("TRY_CAST is not supported", node, "use CAST (a value that does not convert fails the job)")
        if isinstance(node, exp.Cast):
            return self._cast(node)
        if isinstance(node, (exp.DPipe, exp.Concat)):
            parts = [node.this, node.expression] if isinstance(node, exp.DPipe) else list(node.expressions)
            args = [self._as_string(self._compile(p), p) for p in parts]
            return self._checked(node, Call("binary_join_element_wise", (*args, lit(""))))
        return self._function(node)

    def _checked(self, node: exp.Expr, expr: Expr) -> Expr:
        self.type_of(expr, node)
        return expr

    def _boolean(self, node: exp.Expr) -> Expr:
        expr = self._compile(node)
        data_type = self.type_of(expr, node)
        if data_type != pa.bool_() and data_type != pa.null():
            raise self.src.error(f"expected a boolean, got {data_type}", node)
        return expr

    def _as_string(self, expr: Expr, node: exp.Expr) -> Expr:
        data_type = self.type_of(expr, node)
        return expr if pa.types.is_string(data_type) else expr.cast(pa.string())

    def _literal(self, node: exp.Literal) -> Literal:
        if node.is_string:
            return lit(node.this)
        text = node.this
        try:
            value = int(text)
        except ValueError:
            return lit(float(text))
        if not -(2**63) <= value < 2**63:
            raise self.src.error("integer literal outside BIGINT", node, "write it as a DOUBLE (with a decimal point)")
        return lit(value)

    def _interval(self, node: exp.Interval) -> int:
        ms = interval_ms(node)
        if ms is None:
            raise self.src.error("this interval is not understood", node, f"write INTERVAL '10' SECOND; units: {SUPPORTED_UNITS}")
        return ms

    def constant(self, node: exp.Expr | None, kind: type | tuple[type, ...] | None = None, what: str = "a constant") -> Any:
        """The value of a literal argument (a LIKE pattern, a SUBSTRING position...), of the
        Python type ``kind`` when given."""
        value: Any
        if node is None:
            raise self.src.error(f"an argument is missing: expected {what}", None)
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
            value = -self._literal(node.this).value  # type: ignore[attr-defined]
        elif isinstance(node, exp.Literal):
            value = self._literal(node).value  # type: ignore[attr-defined]
        elif isinstance(node, exp.Boolean):
            value = bool(node.this)
        elif isinstance(node, exp.Null):
            value = None
        else:
            raise self.src.error(f"this argument must be {what}", node)
        if kind is not None and (not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind))):
            raise self.src.error(f"this argument must be {what}", node)
        return value

    def _in(self, node: exp.In) -> Expr:
        if node.args.get("query") is not None:
            raise self.src.error("IN (SELECT ...) is not supported", node, "use a JOIN")
        value = self._compile(node.this)
        value_type = self.type_of(value, node.this)
        if not node.expressions:
            raise self.src.error("IN needs at least one value", node)
        items = [self.constant(e, what="a constant (IN takes a list of constants)") for e in node.expressions]
        if pa.types.is_boolean(value_type) != all(isinstance(i, bool) for i in items if i is not None):
            raise self.src.error(f"the IN list does not fit {value_type}", node)
        try:
            values = pa.array([i for i in items if i is not None]).cast(value_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise self.src.error(f"the IN list does not fit the type {value_type} of the value", node) from None
        # SQL: x IN (...) is NULL when x is NULL, and NULL rather than false when the list has a
        # NULL and x is not in it (Arrow's is_in says false).
        found: Expr = Call("is_in", (value,), {"value_set": values})
        unknown = Literal(pa.scalar(None, pa.bool_()))
        if None in items:
            found = Call("if_else", (found, lit(True), unknown))
        return self._checked(node, Call("if_else", (call("is_null", value), unknown, found)))

    def _like(self, node: exp.Like | exp.ILike) -> Expr:
        pattern = self.constant(node.expression)
        if not isinstance(pattern, str):
            raise self.src.error("a LIKE pattern must be a string", node.expression)
        value = self._as_string(self._compile(node.this), node.this)
        options = {"pattern": pattern, "ignore_case": isinstance(node, exp.ILike)}
        matched: Expr = Call("match_like", (value,), options)
        if node.args.get("negate"):  # x NOT LIKE p (sqlglot keeps the NOT on the node)
            matched = call("invert", matched)
        return self._checked(node, matched)

    def _case(self, node: exp.Case) -> Expr:
        operand = node.this
        branches = []
        for branch in node.args.get("ifs") or []:
            condition = branch.this if operand is None else exp.EQ(this=operand.copy(), expression=branch.this)
            branches.append((condition, branch.args["true"]))
        return self._if_else(node, branches, node.args.get("default"))

    def _if_else(self, node: exp.Expr, branches: list[tuple[exp.Expr, exp.Expr]], default: exp.Expr | None) -> Expr:
        values = [self._compile(value) for _, value in branches]
        otherwise = self._compile(default) if default is not None else None
        # The result type: the first non-null branch; the others are cast to it.
        types = [self.type_of(v, n) for v, (_, n) in zip(values, branches, strict=True)]
        if otherwise is not None:
            types.append(self.type_of(otherwise, default))  # type: ignore[arg-type]
        result_type = _common_type([t for t in types if t != pa.null()])
        if result_type is False:
            shown = ", ".join(sorted({str(t) for t in types if t != pa.null()}))
            raise self.src.error(f"the branches have types that do not mix: {shown}", node, "CAST them to one type")
        result_type = result_type or pa.null()
        result: Expr = otherwise.cast(result_type) if otherwise is not None else Literal(pa.scalar(None, result_type))
        for (condition, _), value in zip(reversed(branches), reversed(values), strict=True):
            test = call("coalesce", self._boolean(condition), False)
            result = Call("if_else", (test, value.cast(result_type), result))
        return self._checked(node, result)

    def _cast(self, node: exp.Cast) -> Expr:
        target = arrow_type(node.to)
        if target is None:
            raise self.src.error(f"type {node.to.sql()} is not supported", node.to, f"supported types: {SUPPORTED_TYPES}")
        if isinstance(node.this, exp.Literal) and node.this.is_string and target == EVENT_TIME_TYPE:
            return Literal(pa.scalar(_parse_timestamp(self.src, node.this), EVENT_TIME_TYPE))
        value = self._compile(node.this)
        source = self.type_of(value, node.this)
        if pa.types.is_floating(source) and pa.types.is_integer(target):
            # SQL truncates toward zero (Flink, Java); Arrow's safe cast would refuse 63.2.
            return self._checked(node, Call("cast", (call("trunc", value),), {"target_type": target, "safe": False}))
        return self._checked(node, value.cast(target))

    def _function(self, node: exp.Expr) -> Expr:
        name = (node.name if isinstance(node, exp.Anonymous) else node.key).upper()
        args = (
            [a for a in [node.this, *node.expressions] if isinstance(a, exp.Expr)]
            if not isinstance(node, exp.Anonymous)
            else list(node.expressions)
        )
        if isinstance(node, exp.Extract):
            unit = node.this.name.upper()
            function = _EXTRACT.get(unit)
            if function is None:
                raise self.src.error(f"EXTRACT of {unit} is not supported", node.this, f"units: {', '.join(_EXTRACT)}")
            value = self._compile(node.expression)
            if function == "epoch":
                return self._checked(node, call("divide", value.cast(pa.int64()), 1000))
            if function == "day_of_week":  # Flink: Sunday = 1 ... Saturday = 7
                return self._checked(node, Call(function, (value,), {"count_from_zero": False, "week_start": 7}))
            return self._checked(node, call(function, value))
        if isinstance(node, exp.Substring):
            value = self._as_string(self._compile(node.this), node.this)
            start = self.constant(node.args["start"], int, "an integer constant") if node.args.get("start") else 1
            length = node.args.get("length")
            # SQL counts from 1; a negative start counts from the end (as Flink and DuckDB).
            first = start - 1 if start > 0 else start if start < 0 else 0
            options: dict[str, Any] = {"start": first}
            if length is not None:
                count = self.constant(length, int, "an integer constant")
                if count < 0:
                    raise self.src.error("SUBSTRING's length must be >= 0", length)
                stop = first + count
                if not (first < 0 <= stop):
                    options["stop"] = stop
            return self._checked(node, Call("utf8_slice_codeunits", (value,), options))
        if isinstance(node, exp.Round):
            digits = self.constant(node.args["decimals"], int, "an integer constant") if node.args.get("decimals") else 0
            options = {"ndigits": digits, "round_mode": "half_towards_infinity"}  # Flink: HALF_UP
            return self._checked(node, Call("round", (self._compile(node.this),), options))
        if isinstance(node, (exp.Floor, exp.Ceil)):
            return self._floor_ceil(node)
        if isinstance(node, exp.Pow):
            return self._checked(node, call("power", self._compile(node.this), self._compile(node.expression)))
        if isinstance(node, exp.Coalesce):
            return self._checked(node, Call("coalesce", tuple(self._compile(a) for a in args)))
        if isinstance(node, exp.Nullif):
            value, other = self._compile(node.this), self._compile(node.expression)
            value_type = self.type_of(value, node.this)
            return self._checked(
                node, Call("if_else", (call("coalesce", value == other, False), Literal(pa.scalar(None, value_type)), value))
            )
        if isinstance(node, (exp.Greatest, exp.Least)):
            function = "max_element_wise" if isinstance(node, exp.Greatest) else "min_element_wise"
            # NULL when any argument is NULL, as in Flink (Arrow skips nulls by default).
            return self._checked(node, Call(function, tuple(self._compile(a) for a in args), {"skip_nulls": False}))
        if isinstance(node, exp.Replace) or name == "REPLACE":
            if isinstance(node, exp.Replace):
                args = [a for a in (node.this, node.expression, node.args.get("replacement")) if a is not None]
            if len(args) != 3:
                raise self.src.error("REPLACE takes a string, what to replace and its replacement", node)
            value = self._as_string(self._compile(args[0]), args[0])
            options = {
                "pattern": self.constant(args[1], str, "a string constant"),
                "replacement": self.constant(args[2], str, "a string constant"),
            }
            return self._checked(node, Call("replace_substring", (value,), options))
        if name in ("STARTS_WITH", "STARTSWITH"):
            if isinstance(node, exp.StartsWith):
                args = [node.this, node.expression]
            if len(args) != 2:
                raise self.src.error("STARTS_WITH takes a string and a prefix", node)
            value = self._as_string(self._compile(args[0]), args[0])
            prefix = self.constant(args[1], str, "a string constant")
            return self._checked(node, Call("starts_with", (value,), {"pattern": prefix}))
        if name in ("DATE_FORMAT", "TIMETOSTR", "TIME_TO_STR"):
            return self._date_format(node, args)
        if name == "MOD":
            return self._checked(node, self._mod(node, self._compile(args[0]), self._compile(args[1])))
        if name in ("POWER", "POW"):
            return self._checked(node, call("power", self._compile(args[0]), self._compile(args[1])))
        if name in ("IF", "IIF") and len(args) == 3:
            return self._if_else(node, [(args[0], args[1])], args[2])
        unary = _UNARY.get(name)
        if unary is not None and len(args) == 1:
            value = self._compile(args[0])
            if unary.startswith("utf8_"):
                value = self._as_string(value, args[0])
            return self._checked(node, call(unary, value))
        if name in ("TUMBLE", "HOP", "SESSION", "CUMULATE") or name.endswith(("_START", "_END", "_ROWTIME")):
            raise self.src.error(
                f"{name} is allowed only in GROUP BY (the group-window form) or, for TUMBLE_START/_END, with that GROUP BY",
                node,
            )
        raise self.src.error(f"function {name} is not supported", node, f"supported: {SUPPORTED_FUNCTIONS}")

    def _mod(self, node: exp.Expr, a: Expr, b: Expr) -> Expr:
        """SQL's MOD: the sign of the dividend (Arrow's modulo takes the divisor's)."""
        if all(pa.types.is_integer(self.type_of(x, node)) for x in (a, b)):
            return call("subtract", a, call("multiply", call("divide", a, b), b))
        return call("subtract", a, call("multiply", call("trunc", call("divide", a, b)), b))

    def _floor_ceil(self, node: exp.Floor | exp.Ceil) -> Expr:
        value = self._compile(node.this)
        unit = node.args.get("to")
        if unit is not None:
            unit_name = _TEMPORAL_UNITS.get(unit.name.upper())
            if unit_name is None:
                raise self.src.error(f"FLOOR/CEIL to {unit.name} is not supported", unit, f"units: {', '.join(_TEMPORAL_UNITS)}")
            function = "floor_temporal" if isinstance(node, exp.Floor) else "ceil_temporal"
            return self._checked(node, Call(function, (value,), {"unit": unit_name}))
        return self._checked(node, call("floor" if isinstance(node, exp.Floor) else "ceil", value))

    def _date_format(self, node: exp.Expr, args: list[exp.Expr]) -> Expr:
        if not 1 <= len(args) <= 2:
            raise self.src.error("DATE_FORMAT takes a timestamp and a format such as 'yyyy-MM-dd HH:mm'", node)
        pattern = self.constant(args[1], str, "a format string") if len(args) > 1 else "yyyy-MM-dd HH:mm:ss"
        value = self._compile(args[0])
        # Whole seconds for %S (Arrow prints a ms timestamp's fraction there); SSS is the
        # milliseconds, zero-padded, joined between the formatted pieces.
        seconds = Call("cast", (Call("floor_temporal", (value,), {"unit": "second"}),), {"target_type": pa.timestamp("s", "UTC")})
        millis = Call("utf8_lpad", (call("millisecond", value).cast(pa.string()),), {"width": 3, "padding": "0"})
        parts: list[Expr] = []
        for i, piece in enumerate(pattern.split("SSS")):
            if i:
                parts.append(millis)
            for java, c in _JAVA_TIME_PATTERN:
                piece = piece.replace(java, c)
            if piece:
                parts.append(Call("strftime", (seconds,), {"format": piece, "locale": "C"}))
        if not parts:
            return self._checked(node, lit(""))
        if len(parts) == 1:
            return self._checked(node, parts[0])
        return self._checked(node, Call("binary_join_element_wise", (*parts, lit(""))))


_OPERATION: dict[type, str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
}
_SQL_TYPE_NAMES = {
    pa.int64(): "BIGINT",
    pa.int32(): "INT",
    pa.int16(): "SMALLINT",
    pa.int8(): "TINYINT",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.bool_(): "BOOLEAN",
    pa.string(): "STRING",
    pa.date32(): "DATE",
    pa.null(): "NULL",
    pa.duration("ms"): "INTERVAL",
}


def sql_type_name(data_type: pa.DataType) -> str:
    """The SQL name of an Arrow type, for messages."""
    if pa.types.is_timestamp(data_type):
        return "TIMESTAMP(3)"
    if pa.types.is_decimal(data_type):
        return f"DECIMAL({data_type.precision}, {data_type.scale})"
    return _SQL_TYPE_NAMES.get(data_type, str(data_type))


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _parse_timestamp(src: SourceText, node: exp.Literal) -> datetime:
    text = node.this.strip().replace("T", " ")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise src.error("not a timestamp", node, "write TIMESTAMP '2026-01-01 00:00:00'") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _common_type(types: list[pa.DataType]) -> pa.DataType | bool | None:
    """The type the values mix into; None when there are none, False when they do not mix."""
    if not types:
        return None
    first = types[0]
    if all(t == first for t in types):
        return first
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in types):
        return pa.float64() if any(not pa.types.is_integer(t) for t in types) else pa.int64()
    if all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in types):
        return pa.string()
    return False


def _plain(exc: Exception) -> str:
    # pyarrow's messages end with the C++ source location after a newline; drop it.
    return str(exc).split("\n")[0]


__all__ = ["ExpressionCompiler", "Field", "Scope", "sql_key", "SUPPORTED_FUNCTIONS"]
