"""Compiles parsed SQL statements to a ``Dataflow``: tables to sources, SELECTs to the same
operators as the Python API (filter, select, windows, joins), INSERTs and queries to sinks.

A relation is a stream plus the columns SQL sees in it: each has a name, an optional
qualifier (table alias) and the physical column that holds it. The event-time column is
always kept in the stream, hidden if the query does not select it, because the engine's
windows and joins need it downstream.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pyarrow as pa
from sqlglot import exp

from engine.dataflow import Dataflow, Stream
from engine.errors import CitystreamError, OptionError, PlanError
from engine.expr import Expr, col
from engine.timeutil import EVENT_TIME_TYPE
from operators.sql.connectors import Connectors, TableDef
from operators.sql.errors import SourceText, span
from operators.sql.expressions import ExpressionCompiler, Field, Scope, sql_key
from operators.sql.types import SUPPORTED_TYPES, arrow_type, duration_scalar, interval_ms
from operators.window.aggregates import Agg

_AGGREGATES: dict[type, str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Min: "min",
    exp.Max: "max",
    exp.Avg: "mean",
    exp.FirstValue: "first",
    exp.LastValue: "last",
}
SUPPORTED_AGGREGATES = "COUNT(*), COUNT(x), COUNT(DISTINCT x), SUM, MIN, MAX, AVG, FIRST_VALUE, LAST_VALUE (by event time)"
_WINDOW_KINDS = ("TUMBLE", "HOP", "SESSION")
SUPPORTED_STATEMENTS = "CREATE TABLE, CREATE VIEW, INSERT INTO ... SELECT, SELECT, SET 'key' = 'value'"


@dataclass(frozen=True)
class WindowSpec:
    """A window of a table function (``TABLE(TUMBLE(...))``) or of the group-window form."""

    kind: str  # TUMBLE, HOP, SESSION
    size_ms: int
    slide_ms: int
    node: exp.Expr
    partition: tuple[str, ...] = ()  # physical columns of PARTITION BY (a session per key)

    def engine_spec(self) -> Any:
        from operators.window import Hopping, Session, Tumbling

        if self.kind == "TUMBLE":
            return Tumbling(self.size_ms)
        if self.kind == "HOP":
            return Hopping(self.size_ms, self.slide_ms)
        return Session(self.size_ms)


@dataclass
class Relation:
    """A stream and the columns SQL sees in it.

    ``window``: the physical (start, end) columns when every row belongs to a window (a window
    aggregate's result, assigned window columns); ``pending``: a window table function not yet
    applied (a GROUP BY on its window_start/window_end becomes a window aggregate);
    ``updating``: the key columns when the stream is a changelog (non-windowed GROUP BY).
    """

    stream: Stream
    fields: list[Field]
    window: tuple[str, str] | None = None
    pending: WindowSpec | None = None
    updating: list[str] | None = None

    @property
    def time(self) -> str | None:
        return self.stream.node.event_time.get(self.stream.output)

    @property
    def schema(self) -> pa.Schema:
        return self.stream.schema

    def scope(self, context: str = "this query") -> Scope:
        return Scope(self.fields, self.schema, context=context)

    def qualified(self, qualifier: str | None) -> Relation:
        return replace(self, fields=[replace(f, qualifier=qualifier) for f in self.fields])


@dataclass
class SqlOutput:
    """A sink of a SQL job: the columns SQL named, where they are, and how to read them."""

    name: str
    columns: list[str]
    physical: list[str]
    connector: str
    updating: list[str] | None = None  # changelog keys (physical), if the result is updating
    statement: str = ""


@dataclass
class CompileOptions:
    parallelism: int = 1
    state_ttl_ms: int | None = None


@dataclass
class Planner:
    """Compiles the statements of one SQL text into one ``Dataflow``."""

    src: SourceText
    flow: Dataflow
    connectors: Connectors
    options: CompileOptions = field(default_factory=CompileOptions)
    tables: dict[str, TableDef] = field(default_factory=dict)
    views: dict[str, exp.Expr] = field(default_factory=dict)
    outputs: dict[str, SqlOutput] = field(default_factory=dict)
    _sources: dict[str, Relation] = field(default_factory=dict)
    _view_cache: dict[str, Relation] = field(default_factory=dict)
    _compiling: set[str] = field(default_factory=set)
    _names: Any = field(default_factory=lambda: itertools.count(1))

    # ---- statements ---------------------------------------------------------------------

    def statement(self, node: exp.Expr) -> None:
        if isinstance(node, exp.Create):
            kind = (node.args.get("kind") or "").upper()
            if kind == "TABLE":
                return self._create_table(node)
            if kind == "VIEW":
                return self._create_view(node)
            raise self.src.error(f"CREATE {kind} is not supported", node, f"supported statements: {SUPPORTED_STATEMENTS}")
        if isinstance(node, exp.Insert):
            return self._insert(node)
        if isinstance(node, (exp.Select, exp.Union, exp.Subquery)):
            name = self._unique_output("result")
            relation = self.query(node)
            self._sink(name, relation, "collect", node)
            return None
        if isinstance(node, exp.Set):
            return self._set(node)
        raise self.src.error("this statement is not supported", node, f"supported statements: {SUPPORTED_STATEMENTS}")

    def _unique_output(self, base: str) -> str:
        return _unique(base, set(self.outputs), first=2)  # result, result_2, result_3 ...

    def _set(self, node: exp.Set) -> None:
        for item in node.expressions:
            pair = item.this
            if not isinstance(pair, exp.EQ):
                raise self.src.error("write SET 'key' = 'value'", item)
            key, value = pair.this.name, pair.expression.name
            if key == "parallelism.default":
                if not value.isdigit() or int(value) < 1:
                    raise self.src.error("parallelism.default must be an integer >= 1", pair.expression)
                self.options.parallelism = int(value)
                self.flow.default_parallelism = int(value)
            elif key == "table.exec.state.ttl":
                ms = interval_ms(exp.Interval(this=exp.Literal.string(value)))
                if ms is None:
                    raise self.src.error("table.exec.state.ttl takes a duration such as '1 hour'", pair.expression)
                self.options.state_ttl_ms = ms
            else:
                raise self.src.error(
                    f"unknown option '{key}'", pair.this, "options: 'parallelism.default', 'table.exec.state.ttl'"
                )

    def _create_table(self, node: exp.Create) -> None:
        schema_node = node.this
        if not isinstance(schema_node, exp.Schema):
            raise self.src.error("CREATE TABLE needs a column list", node)
        name = schema_node.this.name
        if name.lower() in self.tables or name.lower() in self.views:
            raise self.src.error(f"table or view '{name}' is already defined", schema_node.this)
        fields: list[pa.Field] = []
        not_null: list[str] = []
        watermark = None
        for item in schema_node.expressions:
            if isinstance(item, exp.ColumnDef):
                data_type = arrow_type(item.args["kind"]) if item.args.get("kind") is not None else None
                if data_type is None:
                    raise self.src.error(
                        f"column '{item.name}': type {_type_text(item)} is not supported",
                        item,
                        f"supported types: {SUPPORTED_TYPES}",
                    )
                if any(f.name.lower() == item.name.lower() for f in fields):
                    raise self.src.error(f"column '{item.name}' is declared twice", item)
                for constraint in item.args.get("constraints") or []:
                    kind = constraint.args.get("kind")
                    if isinstance(kind, exp.NotNullColumnConstraint):
                        if not kind.args.get("allow_null"):
                            not_null.append(item.name)
                        continue
                    raise self.src.error(
                        f"column '{item.name}': this constraint is not supported", constraint, "columns may say NOT NULL"
                    )
                fields.append(pa.field(item.name, data_type))
            elif isinstance(item, exp.WatermarkColumnConstraint):
                watermark = item
            else:
                raise self.src.error(
                    "only column definitions and WATERMARK FOR are supported in CREATE TABLE",
                    item,
                    "constraints are not supported",
                )
        schema = pa.schema(fields)
        time_column, delay = None, 0
        if watermark is not None:
            time_column, delay = self._watermark(watermark, schema)
        options = {}
        properties = node.args.get("properties")
        for prop in properties.expressions if properties is not None else []:
            if isinstance(prop, exp.Property):
                options[prop.name.lower()] = prop.args["value"].name
        table = TableDef(name, schema, time_column, delay, options, node, tuple(not_null))
        self.connectors.check(self.src, table)
        self.tables[name.lower()] = table

    def _watermark(self, node: exp.WatermarkColumnConstraint, schema: pa.Schema) -> tuple[str, int]:
        column = node.this.name
        matches = [f.name for f in schema if f.name.lower() == column.lower()]
        if not matches:
            raise self.src.error(
                f"WATERMARK FOR names unknown column '{column}'", node.this, f"columns: {', '.join(schema.names)}"
            )
        column = matches[0]
        if schema.field(column).type != EVENT_TIME_TYPE:
            raise self.src.error(
                f"the watermark column '{column}' must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {schema.field(column).type}",
                node.this,
            )
        strategy = node.expression
        if isinstance(strategy, exp.Column) and strategy.name.lower() == column.lower():
            return column, 0
        if (
            isinstance(strategy, exp.Sub)
            and isinstance(strategy.this, exp.Column)
            and strategy.this.name.lower() == column.lower()
            and isinstance(strategy.expression, exp.Interval)
        ):
            ms = interval_ms(strategy.expression)
            if ms is not None and ms >= 0:
                return column, ms
        raise self.src.error(
            "unsupported watermark strategy",
            strategy,
            f"write WATERMARK FOR {column} AS {column} - INTERVAL '2' SECOND (bounded out-of-orderness) or AS {column}",
        )

    def _create_view(self, node: exp.Create) -> None:
        if isinstance(node.this, exp.Schema):
            raise self.src.error("CREATE VIEW v (columns) is not supported", node.this, "name the columns with AS in the SELECT")
        name = node.this.name
        if name.lower() in self.tables or name.lower() in self.views:
            raise self.src.error(f"table or view '{name}' is already defined", node.this)
        query = node.expression
        if not isinstance(query, (exp.Select, exp.Union, exp.Subquery)):
            raise self.src.error("CREATE VIEW needs AS SELECT ...", node)
        self.views[name.lower()] = query
        # Compiled now, so that its mistakes are reported at its definition.
        self._view(name, node.this)

    def _insert(self, node: exp.Insert) -> None:
        target = node.this
        if isinstance(target, exp.Schema):
            raise self.src.error("INSERT INTO t (columns) is not supported", target, "select the columns in the sink's order")
        name = target.name
        table = self.tables.get(name.lower())
        if table is None:
            raise self.src.error(
                f"unknown sink table '{name}'", target, f"tables: {', '.join(t.name for t in self.tables.values()) or 'none'}"
            )
        if not self.connectors.is_sink(table):
            raise self.src.error(
                f"table '{name}' has connector '{table.connector}', which cannot be written to",
                target,
                f"sink connectors: {', '.join(self.connectors.sinks)}",
            )
        relation = self.query(node.expression)
        if len(relation.fields) != len(table.schema):
            raise self.src.error(
                f"the query gives {len(relation.fields)} columns but '{name}' has {len(table.schema)}: "
                f"{', '.join(table.schema.names)}",
                node.expression,
            )
        relation = self._cast_to(relation, table, node.expression)
        if table.name in self.outputs:
            raise self.src.error(
                f"sink '{table.name}' is written twice", target, "write one INSERT per sink (UNION ALL the queries)"
            )
        self._sink(table.name, relation, table.connector, node)

    def _cast_to(self, relation: Relation, table: TableDef, node: exp.Expr) -> Relation:
        computed: dict[str, Expr] = {}
        fields: list[Field] = []
        for f, target in zip(relation.fields, table.schema, strict=True):
            actual = relation.schema.field(f.physical).type
            if actual != target.type and actual != pa.null():
                if not _castable(actual, target.type):
                    raise self.src.error(
                        f"column {len(fields) + 1} ('{f.name}') is {actual} but sink column '{target.name}' is {target.type}",
                        node,
                    )
            fields.append(replace(f, name=target.name))
            if actual != target.type:
                computed[f.physical] = col(f.physical).cast(target.type)
        relation = replace(relation, fields=fields)
        if computed:
            relation = self._with_columns(relation, computed, node)
        return relation

    def _sink(self, name: str, relation: Relation, connector: str, node: exp.Expr) -> None:
        if relation.pending is not None:
            relation = self._materialize(relation, node)
        self.outputs[name] = SqlOutput(
            name,
            [f.name for f in relation.fields],
            [f.physical for f in relation.fields],
            connector,
            relation.updating,
            _statement_text(self.src.text, node),
        )
        with self._located(node):
            self.connectors.attach_sink(connector, name, relation.stream)

    # ---- queries ------------------------------------------------------------------------

    def query(self, node: exp.Expr) -> Relation:
        if isinstance(node, exp.Subquery):
            relation = self.query(node.this)
            alias = node.alias
            return relation.qualified(alias or None)
        if isinstance(node, exp.Union):
            return self._union(node)
        if isinstance(node, exp.Select):
            return self._select(node)
        raise self.src.error("expected a SELECT", node)

    def _union(self, node: exp.Union) -> Relation:
        if node.args.get("distinct"):
            raise self.src.error("UNION (distinct) is not supported", node, "use UNION ALL")
        left, right = self.query(node.this), self.query(node.expression)
        if len(left.fields) != len(right.fields):
            raise self.src.error(f"UNION ALL of {len(left.fields)} and {len(right.fields)} columns", node)
        if left.updating is not None or right.updating is not None:
            raise self.src.error("UNION ALL of an updating (non-windowed GROUP BY) result is not supported", node)
        if left.time is None or right.time is None:
            raise self.src.error("UNION ALL needs an event-time column on both sides", node)
        # Both sides get the left's physical names and types, in the left's order.
        computed = {}
        for lf, rf in zip(left.fields, right.fields, strict=True):
            lt, rt = left.schema.field(lf.physical).type, right.schema.field(rf.physical).type
            if lt != rt and not _castable(rt, lt):
                raise self.src.error(f"UNION ALL column '{lf.name}': {lt} and {rt} differ", node)
            computed[lf.physical] = col(rf.physical).cast(lt) if lt != rt else col(rf.physical)
        left_time, right_time = left.time, right.time
        if left_time not in computed:
            computed[left_time] = col(right_time)
        elif computed[left_time].columns() != {right_time}:
            raise self.src.error("UNION ALL: the event-time columns of the two sides are not in the same position", node)
        left_cols = {f.physical: col(f.physical) for f in left.fields}
        if left_time not in left_cols:
            left_cols[left_time] = col(left_time)
        order = list(left_cols)
        with self._located(node):
            left_stream = left.stream.project({k: left_cols[k] for k in order}, self._op_name("union_left"))
            right_stream = right.stream.project({k: computed[k] for k in order}, self._op_name("union_right"))
            stream = left_stream.union(right_stream, name=self._op_name("union"))
        return Relation(stream, [replace(f, qualifier=None) for f in left.fields])

    def _select(self, node: exp.Select) -> Relation:
        for arg, what in (
            ("order", "ORDER BY"),
            ("limit", "LIMIT"),
            ("offset", "OFFSET"),
            ("qualify", "QUALIFY"),
            ("windows", "WINDOW"),
            ("with_", "WITH"),
            ("with", "WITH"),
        ):
            if node.args.get(arg):
                raise self.src.error(
                    f"{what} is not supported on streams", node.args[arg], "a stream has no end to sort or cut; use windows"
                )
        if node.args.get("distinct"):
            # The DISTINCT keyword keeps no position in sqlglot's tree: find it before the first item.
            first = span(node.expressions[0]) if node.expressions else None
            keyword = self.src.text.lower().rfind("distinct", 0, first[0]) if first else -1
            if keyword >= 0:
                raise self.src.error_at_offset(
                    "SELECT DISTINCT is not supported", keyword, 8, "use GROUP BY the selected columns"
                )
            raise self.src.error("SELECT DISTINCT is not supported", node, "use GROUP BY the selected columns")
        for item in node.expressions:
            for window in item.find_all(exp.Window):
                raise self.src.error("OVER (...) window functions are not supported", window, "use GROUP BY with a window")
        from_ = node.args.get("from_") or node.args.get("from")
        if from_ is None:
            raise self.src.error("a SELECT needs FROM", node)
        relation = self._from_item(from_.this)
        where = node.args.get("where")
        conjuncts = _conjuncts(where.this) if where is not None else []
        joins = node.args.get("joins") or []
        for i, join in enumerate(joins):
            # WHERE conditions may bound an interval join (Nexmark q7): offered to the last join,
            # which gives back those it did not use.
            if i == len(joins) - 1:
                relation, conjuncts = self._join(relation, join, conjuncts, node)
            else:
                relation, _ = self._join(relation, join, [], node)
        if conjuncts:
            if relation.pending is not None and any(_mentions_window(c) for c in conjuncts):
                relation = self._materialize(relation, node)
            relation = self._filter(relation, conjuncts, where)
        group = node.args.get("group")
        having = node.args.get("having")
        has_aggregates = any(
            isinstance(n, exp.AggFunc) and not isinstance(n, exp.AnyValue) for item in node.expressions for n in item.walk()
        )
        if group is not None or has_aggregates or having is not None:
            return self._aggregate(relation, node, group, having)
        if relation.pending is not None:
            relation = self._materialize(relation, node)
        return self._project(relation, node.expressions, relation.scope())

    # ---- FROM ---------------------------------------------------------------------------

    def _from_item(self, node: exp.Expr) -> Relation:
        if isinstance(node, exp.Subquery):
            return self.query(node)
        if isinstance(node, exp.Table):
            if isinstance(node.this, exp.Anonymous) and node.this.name.upper() == "TABLE":
                relation = self._window_table_function(node.this)
                return relation.qualified(node.alias or None)
            if isinstance(node.this, (exp.Anonymous, exp.Func)):
                raise self.src.error(
                    "this table function is not supported",
                    node.this,
                    "use TABLE(TUMBLE(...)), TABLE(HOP(...)) or TABLE(SESSION(...))",
                )
            if node.args.get("version") is not None:
                raise self.src.error("FOR SYSTEM_TIME AS OF belongs to the right side of a JOIN", node)
            name = node.name
            relation = self._named(name, node)
            return relation.qualified(node.alias or name)
        raise self.src.error(
            f"{node.key.upper()} is not supported in FROM", node, "use a table, a view, a subquery or a window table function"
        )

    def _named(self, name: str, node: exp.Expr) -> Relation:
        if name.lower() in self.views:
            return self._view(name, node)
        table = self.tables.get(name.lower())
        if table is None:
            known = sorted([t.name for t in self.tables.values()] + list(self.views))
            raise self.src.error(f"unknown table or view '{name}'", node, f"defined: {', '.join(known) or 'none'}")
        if name.lower() not in self._sources:
            if self.connectors.is_sink(table):
                raise self.src.error(f"table '{table.name}' is a sink ({table.connector}); it cannot be read", node)
            if table.time is None:
                raise self.src.error(
                    f"table '{table.name}' has no WATERMARK: streams run on event time",
                    table.node.this,
                    "declare WATERMARK FOR <timestamp column> AS <column> - INTERVAL 'n' SECOND",
                )
            with self._located(table.node):
                stream = self.connectors.source(self.src, self.flow, table, self.options.parallelism)
            fields = [Field(f.name, f.name, table.name, f.type) for f in table.schema]
            self._sources[name.lower()] = Relation(stream, fields)
        return self._sources[name.lower()]

    def _view(self, name: str, node: exp.Expr) -> Relation:
        key = name.lower()
        if key in self._compiling:
            raise self.src.error(f"view '{name}' refers to itself", node)
        if key not in self._view_cache:
            self._compiling.add(key)
            try:
                self._view_cache[key] = self.query(self.views[key])
            finally:
                self._compiling.discard(key)
        return self._view_cache[key]

    def _window_table_function(self, node: exp.Anonymous) -> Relation:
        inner = node.expressions[0] if len(node.expressions) == 1 else None
        if not isinstance(inner, exp.Anonymous) or inner.name.upper() not in _WINDOW_KINDS:
            raise self.src.error(
                "only window table functions are supported in TABLE(...)",
                node,
                "TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size)), TABLE(HOP(TABLE t, DESCRIPTOR(ts), slide, size)), "
                "TABLE(SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap))",
            )
        kind = inner.name.upper()
        args = list(inner.expressions)
        if not args or not isinstance(args[0], exp.Table):
            raise self.src.error(f"{kind} needs TABLE <name> as its first argument", inner)
        table_arg = args[0]
        relation = self._named(table_arg.name, table_arg)
        relation = relation.qualified(table_arg.name)
        if len(args) < 3 or not (isinstance(args[1], exp.Anonymous) and args[1].name.upper() == "DESCRIPTOR"):
            raise self.src.error(f"{kind} needs DESCRIPTOR(time column) as its second argument", inner)
        descriptor = args[1].expressions[0] if args[1].expressions else args[1]
        if not isinstance(descriptor, exp.Column):
            raise self.src.error("DESCRIPTOR takes a column", args[1])
        self._check_time_column(relation, descriptor)
        spec = self._window_spec(kind, args[2:], inner)
        partition = table_arg.args.get("partition")
        if partition is not None:
            scope = relation.scope("PARTITION BY")
            keys = []
            for column in partition.expressions:
                if not isinstance(column, exp.Column):
                    raise self.src.error("PARTITION BY takes columns", column)
                keys.append(scope.resolve(self.src, column).physical)
            spec = replace(spec, partition=tuple(keys))
        if relation.window is not None or relation.pending is not None:
            raise self.src.error("the table already has window columns", table_arg)
        names = {f.physical for f in relation.fields} | set(relation.schema.names)
        fields = list(relation.fields)
        for column in ("window_start", "window_end", "window_time"):
            fields.append(Field(column, _unique(column, names), None, EVENT_TIME_TYPE))
        return Relation(relation.stream, fields, pending=spec)

    def _check_time_column(self, relation: Relation, column: exp.Column) -> Field:
        f = relation.scope().resolve(self.src, column)
        if f.physical != relation.time:
            time_name = next((x.name for x in relation.fields if x.physical == relation.time), relation.time)
            raise self.src.error(
                f"'{column.sql()}' is not the event-time column of this relation",
                column,
                f"windows and temporal joins run on the event time: '{time_name}' (the column of its WATERMARK)",
            )
        return f

    def _window_spec(self, kind: str, args: list[exp.Expr], node: exp.Expr) -> WindowSpec:
        intervals = []
        for arg in args:
            if not isinstance(arg, exp.Interval):
                raise self.src.error(f"{kind} takes INTERVAL arguments here", arg)
            ms = interval_ms(arg)
            if ms is None or ms <= 0:
                raise self.src.error("a window interval must be a positive INTERVAL such as INTERVAL '10' SECOND", arg)
            intervals.append(ms)
        if kind == "TUMBLE" and len(intervals) == 1:
            return WindowSpec(kind, intervals[0], intervals[0], node)
        if kind == "HOP" and len(intervals) == 2:
            slide, size = intervals
            if slide > size:
                raise self.src.error(f"HOP slide ({slide} ms) is longer than its size ({size} ms)", node, "HOP(..., slide, size)")
            return WindowSpec(kind, size, slide, node)
        if kind == "SESSION" and len(intervals) == 1:
            return WindowSpec(kind, intervals[0], intervals[0], node)
        usage = {"TUMBLE": "one interval (size)", "HOP": "two intervals (slide, size)", "SESSION": "one interval (gap)"}[kind]
        raise self.src.error(f"{kind} takes {usage}", node)

    def _materialize(self, relation: Relation, node: exp.Expr) -> Relation:
        """Applies a pending window table function: window columns on each row (a hopping
        window repeats the row once per window)."""
        spec = relation.pending
        assert spec is not None
        if spec.kind == "SESSION":
            raise self.src.error(
                "SESSION windows can only be aggregated here",
                spec.node,
                "GROUP BY window_start, window_end (and keys) right after it",
            )
        from operators.window.assign import WindowAssigner

        start, end, wtime = (f.physical for f in relation.fields[-3:])
        assigner = WindowAssigner(relation.time or "", spec.size_ms, spec.slide_ms, relation.schema, (start, end, wtime))
        with self._located(node):
            stream = relation.stream.map_batches(assigner, assigner.schema, name=self._op_name("window_columns"))
        return Relation(stream, relation.fields, window=(start, end))

    # ---- WHERE and projection ------------------------------------------------------------

    def _filter(self, relation: Relation, conjuncts: list[exp.Expr], node: exp.Expr | None) -> Relation:
        if relation.updating is not None:
            raise self.src.error(
                "WHERE over an updating (non-windowed GROUP BY) result is not supported", node, "filter with HAVING in that query"
            )
        predicate = ExpressionCompiler(self.src, relation.scope("WHERE")).condition(conjuncts, "WHERE")
        with self._located(node):
            stream = relation.stream.filter(predicate, name=self._op_name("where"))
        return replace(relation, stream=stream)

    def _project(self, relation: Relation, items: list[exp.Expr], scope: Scope) -> Relation:
        compiler = ExpressionCompiler(self.src, scope)
        outputs: list[tuple[str, Expr, exp.Expr, Field | None]] = []
        for i, item in enumerate(items):
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
                qualifier = item.table if isinstance(item, exp.Column) else None
                chosen = [f for f in scope.fields if qualifier is None or (f.qualifier or "").lower() == qualifier.lower()]
                if qualifier and not chosen:
                    raise self.src.error(f"unknown table or alias '{qualifier}'", item)
                outputs.extend((f.name, col(f.physical), item, f) for f in chosen)
                continue
            expr_node = item.this if isinstance(item, exp.Alias) else item
            name = (
                item.alias
                if isinstance(item, exp.Alias)
                else (expr_node.name if isinstance(expr_node, exp.Column) else f"EXPR${i}")
            )
            source_field = scope.resolve(self.src, expr_node) if isinstance(expr_node, exp.Column) else None
            if source_field is not None and sql_key(expr_node) in scope.computed:
                source_field = None
            outputs.append((name, compiler.compile(expr_node), item, source_field))
        time = relation.time
        taken = {time} if time else set()
        if relation.updating is not None:
            taken |= set(relation.updating) | {"__op"}
        computed: dict[str, Expr] = {}
        fields: list[Field] = []
        window_start = window_end = None
        for name, expr, item, source in outputs:
            physical = source.physical if source is not None and source.physical == time and name == source.physical else None
            if physical is None:
                physical = _unique(name, taken | set(computed))
            taken.add(physical)
            computed[physical] = expr
            data_type = compiler.type_of(expr, item)
            fields.append(Field(name, physical, None, data_type))
            if source is not None and relation.window is not None:
                if source.physical == relation.window[0]:
                    window_start = physical
                elif source.physical == relation.window[1]:
                    window_end = physical
        if time and time not in computed:
            computed[time] = col(time)
        if relation.updating is not None:
            for key in [*relation.updating, "__op"]:
                computed.setdefault(key, col(key))
        with self._located(items[0] if items else None):
            stream = relation.stream.project(computed, self._op_name("select"))
        window = (window_start, window_end) if window_start and window_end else None
        return Relation(stream, fields, window=window, updating=relation.updating)

    def _with_columns(self, relation: Relation, computed: dict[str, Expr], node: exp.Expr) -> Relation:
        columns: dict[str, Expr] = {name: col(name) for name in relation.schema.names}
        columns.update(computed)
        with self._located(node):
            stream = relation.stream.project(columns, self._op_name("cast"))
        return replace(relation, stream=stream)

    # ---- GROUP BY -----------------------------------------------------------------------

    def _aggregate(self, relation: Relation, node: exp.Select, group: exp.Group | None, having: exp.Having | None) -> Relation:
        for item in node.expressions:
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
                raise self.src.error(
                    "SELECT * with GROUP BY or aggregates is not supported", item, "name the grouped columns and the aggregates"
                )
        if relation.updating is not None:
            raise self.src.error("aggregating an updating (non-windowed GROUP BY) result is not supported", node)
        scope = relation.scope("GROUP BY")
        aliases = {item.alias.lower(): item.this for item in node.expressions if isinstance(item, exp.Alias)}
        spec: WindowSpec | None = None
        key_nodes: list[exp.Expr] = []
        window_fields: dict[str, Field] = {}
        group_window: exp.Anonymous | None = None
        for item in group.expressions if group is not None else []:
            if isinstance(item, exp.Anonymous) and item.name.upper() in _WINDOW_KINDS:
                if spec is not None:
                    raise self.src.error("only one window per GROUP BY", item)
                if not item.expressions or not isinstance(item.expressions[0], exp.Column):
                    raise self.src.error(f"{item.name.upper()} needs the event-time column first", item)
                self._check_time_column(relation, item.expressions[0])
                spec = self._window_spec(item.name.upper(), item.expressions[1:], item)
                group_window = item
                continue
            if isinstance(item, exp.Column) and not item.table and item.name.lower() in aliases:
                try:
                    scope.resolve(self.src, item)
                except CitystreamError:
                    item = aliases[item.name.lower()]
            if isinstance(item, exp.Column):
                f = scope.resolve(self.src, item)
                if relation.pending is not None and f in relation.fields[-3:]:
                    window_fields[f.name.lower()] = f
                    continue
                if relation.window is not None and f.physical in relation.window:
                    window_fields["window_start" if f.physical == relation.window[0] else "window_end"] = f
                    continue
            if any(sql_key(item) == sql_key(k) for k in key_nodes):
                continue  # GROUP BY k, k
            key_nodes.append(item)
        if window_fields and set(window_fields) != {"window_start", "window_end"}:
            raise self.src.error("GROUP BY a window needs both window_start and window_end", group)
        if window_fields and spec is not None:
            raise self.src.error("GROUP BY both a window function and window columns", group)
        if relation.pending is not None and not window_fields:
            if spec is None:
                relation = self._materialize(relation, node)
                scope = relation.scope("GROUP BY")
            else:
                raise self.src.error("GROUP BY TUMBLE(...) over a window table function", group)
        if window_fields and relation.pending is not None:
            spec = relation.pending
        column_window = bool(window_fields) and relation.pending is None

        # Pre-projection: group keys and aggregate arguments as columns.
        pre: dict[str, Expr] = {name: col(name) for name in relation.schema.names}
        taken = set(pre)
        compiler = ExpressionCompiler(self.src, scope)
        keys: list[tuple[exp.Expr, str, str]] = []  # (node, physical, output name)
        for i, key in enumerate(key_nodes):
            if isinstance(key, exp.Column):
                f = scope.resolve(self.src, key)
                keys.append((key, f.physical, f.name))
            else:
                physical = _unique(f"__key{i}", taken)
                taken.add(physical)
                pre[physical] = compiler.compile(key)
                keys.append((key, physical, physical))
        aggs: list[Agg] = []
        agg_columns: dict[str, str] = {}

        def collect(call: exp.AggFunc) -> Expr:
            key = sql_key(call)
            if key in agg_columns:
                return col(agg_columns[key])
            function = _AGGREGATES.get(type(call))
            if function is None:
                raise self.src.error(f"aggregate {call.key.upper()} is not supported", call, f"supported: {SUPPORTED_AGGREGATES}")
            argument = call.this
            if call.expressions:
                raise self.src.error(f"{call.key.upper()} takes one argument", call)
            if isinstance(argument, exp.Distinct):
                if function != "count" or len(argument.expressions) != 1:
                    raise self.src.error("only COUNT(DISTINCT x) of one column is supported", call)
                function, argument = "count_distinct", argument.expressions[0]
            if isinstance(argument, exp.Star) or (function == "count" and argument is None):
                column = None
            else:
                if argument is None:
                    raise self.src.error(f"{call.key.upper()} needs an argument", call)
                inner = ExpressionCompiler(self.src, scope)
                value = inner.compile(argument)
                if isinstance(argument, exp.Column):
                    column = scope.resolve(self.src, argument).physical
                else:
                    column = _unique(f"__arg{len(aggs)}", taken)
                    taken.add(column)
                    pre[column] = value
                value_type = inner.type_of(value, argument)
                if function in ("sum", "mean") and not (
                    pa.types.is_integer(value_type) or pa.types.is_floating(value_type) or pa.types.is_decimal(value_type)
                ):
                    raise self.src.error(f"{call.key.upper()} of a {value_type} value is not defined", argument)
            name = f"__agg{len(aggs)}"
            aggs.append(Agg(function, column, name))
            agg_columns[key] = name
            return col(name)

        # Walk SELECT and HAVING once to find the aggregates (and check what they read).
        for item in [*node.expressions, *([having.this] if having is not None else [])]:
            for call in item.find_all(exp.AggFunc):
                if not any(isinstance(p, exp.AggFunc) for p in _ancestors(call, item)):
                    collect(call)
        needs_hidden_count = not aggs
        if needs_hidden_count:
            aggs.append(Agg("count", None, "__agg0"))
        time = relation.time
        if spec is not None or column_window:
            if time is None:
                raise self.src.error("a window needs an event-time column", node)
        pre_stream = relation.stream
        if len(pre) > len(relation.schema.names):
            with self._located(node):
                pre_stream = pre_stream.project(pre, self._op_name("group_keys"))
        window_out: dict[str, str] = {}
        with self._located(group or node):
            if spec is not None or column_window:
                if column_window:
                    # Rows already carry their window (a window aggregate's result, or assigned
                    # window columns): group by those columns in a 1 ms window at end - 1, which
                    # fires when the watermark passes the window's end, like the window itself.
                    start, end = window_fields["window_start"].physical, window_fields["window_end"].physical
                    renamed = {"__ws": col(start), "__we": col(end)}
                    time_shift = col(end).cast(pa.int64()) - 1
                    columns: dict[str, Expr] = {n: col(n) for n in pre_stream.schema.names if n not in (start, end)}
                    columns.update(renamed)
                    columns[time or ""] = time_shift.cast(EVENT_TIME_TYPE)
                    pre_stream = pre_stream.project(columns, self._op_name("window_of_rows"))
                    from operators.window import Tumbling

                    engine_spec: Any = Tumbling(1)
                    key_physical = ["__ws", "__we"] + [k for _, k, _ in keys]
                    window_out = {"window_start": "__ws", "window_end": "__we"}
                else:
                    assert spec is not None
                    engine_spec = spec.engine_spec()
                    key_physical = [k for _, k, _ in keys]
                    # PARTITION BY keys the windows even when the query does not group by them.
                    key_physical += [k for k in spec.partition if k not in key_physical]
                    window_out = {"window_start": "window_start", "window_end": "window_end", "window_time": "window_time"}
                clash = [k for k in key_physical if k in ("window_start", "window_end", "window_time", "is_update")]
                if clash:
                    raise self.src.error(f"a group key is named '{clash[0]}', which the window's result uses", group)
                keyed = pre_stream.key_by(*key_physical) if key_physical else pre_stream
                stream = keyed.window(engine_spec, aggs, name=self._op_name("window"))
                updating = None
            else:
                from operators.group import updating_schema
                from operators.window.aggregates import TwoPhaseAggregate

                key_physical = [k for _, k, _ in keys]
                if time is None:
                    raise self.src.error("GROUP BY needs a stream with an event-time column", node)
                aggregate = TwoPhaseAggregate("group_by", aggs, pre_stream.schema, time)
                key_fields = [pre_stream.schema.field(k) for k in key_physical]
                out_schema = updating_schema(key_fields, aggregate.output_fields)
                having_expr = None
                if having is not None:
                    having_scope = self._post_scope(relation, keys, key_fields, agg_columns, out_schema, {}, group_window)
                    having_expr = ExpressionCompiler(self.src, having_scope, aggregate=collect).condition([having.this], "HAVING")
                keyed = pre_stream.key_by(*key_physical) if key_physical else pre_stream
                from operators.group import UpdatingAggregate

                factory = partial(UpdatingAggregate, key_physical, aggregate, having_expr, out_schema)
                stream = keyed.process(factory, out_schema, self._op_name("group_by"), timeless=True)
                updating = key_physical
                having = None  # applied inside the operator (a key that stops passing is deleted)
        post_schema = stream.schema
        key_fields = [post_schema.field(k) for k in key_physical if not k.startswith("__w")]
        scope = self._post_scope(relation, keys, key_fields, agg_columns, post_schema, window_out, group_window, window_fields)
        post = Relation(stream, scope.fields, updating=updating)
        if window_out.get("window_start") and window_out.get("window_end"):
            post.window = (window_out["window_start"], window_out["window_end"])
        if having is not None:
            predicate = ExpressionCompiler(self.src, scope, aggregate=collect).condition([having.this], "HAVING")
            with self._located(having):
                post = replace(post, stream=post.stream.filter(predicate, name=self._op_name("having")))
        items = list(node.expressions)
        compiled = self._project(post, items, replace(scope, context="SELECT (after GROUP BY)"))
        return compiled

    def _post_scope(
        self,
        relation: Relation,
        keys: list[tuple[exp.Expr, str, str]],
        key_fields: list[pa.Field],
        agg_columns: dict[str, str],
        schema: pa.Schema,
        window_out: dict[str, str],
        group_window: exp.Anonymous | None,
        window_fields: dict[str, Field] | None = None,
    ) -> Scope:
        """What SELECT and HAVING may name after a GROUP BY: the keys (by their column names or
        their expressions), the window's columns, and the aggregates (by their text)."""
        fields: list[Field] = []
        computed = dict(agg_columns)
        for key_node, physical, _ in keys:
            if isinstance(key_node, exp.Column):
                original = relation.scope().resolve(self.src, key_node)
                fields.append(Field(original.name, physical, original.qualifier, schema.field(physical).type))
            computed[sql_key(key_node)] = physical
        for column, physical in window_out.items():
            # A window column keeps its SQL name (and qualifier) when the rows carried it under
            # another (Nexmark q5: window_start AS starttime, grouped as CountBids.starttime).
            twin_field = (window_fields or {}).get(column) or next((f for f in relation.fields if f.name.lower() == column), None)
            fields.append(
                Field(
                    twin_field.name if twin_field else column,
                    physical,
                    twin_field.qualifier if twin_field else None,
                    EVENT_TIME_TYPE,
                )
            )
        if group_window is not None:
            kind = group_window.name.upper()
            for suffix, column in (("_START", "window_start"), ("_END", "window_end"), ("_ROWTIME", "window_time")):
                twin = group_window.copy()
                twin.set("this", kind + suffix)
                computed[sql_key(twin)] = column
        return Scope(fields, schema, computed)

    # ---- JOIN ---------------------------------------------------------------------------

    def _join(self, left: Relation, node: exp.Join, where: list[exp.Expr], select: exp.Select) -> tuple[Relation, list[exp.Expr]]:
        from operators.sql.joins import plan_join

        return plan_join(self, left, node, where, select)

    # ---- helpers -------------------------------------------------------------------------

    def _op_name(self, kind: str) -> str:
        return f"{kind}_{next(self._names)}"

    def _located(self, node: exp.Expr | None) -> _Located:
        return _Located(self.src, node)


class _Located:
    """Turns an engine PlanError raised while building an operator into a SqlError at the SQL
    that asked for it."""

    def __init__(self, src: SourceText, node: exp.Expr | None) -> None:
        self.src, self.node = src, node

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if isinstance(error, (PlanError, OptionError)):
            raise self.src.error(str(error), self.node) from None


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren) and isinstance(node.this, exp.And):
        return _conjuncts(node.this)
    return [node]


def _ancestors(node: exp.Expr, stop: exp.Expr) -> list[exp.Expr]:
    found = []
    parent = node.parent
    while parent is not None and parent is not stop.parent:
        found.append(parent)
        if parent is stop:
            break
        parent = parent.parent
    return found


def _type_text(column: exp.ColumnDef) -> str:
    kind = column.args.get("kind")
    return kind.sql() if kind is not None else "(none)"


def _unique(name: str, taken: set[str], first: int = 1) -> str:
    if name not in taken:
        return name
    for i in itertools.count(first):
        candidate = f"{name}_{i}"
        if candidate not in taken:
            return candidate
    raise AssertionError


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    numeric = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if numeric(source) and numeric(target):
        return True
    if pa.types.is_string(target):
        return True
    return source == target


def _mentions_window(node: exp.Expr) -> bool:
    names = {"window_start", "window_end", "window_time"}
    return any(c.name.lower() in names for c in node.find_all(exp.Column))


def _statement_text(text: str, node: exp.Expr) -> str:
    where = span(node)
    return text[where[0] : where[1] + 1] if where else ""


__all__ = ["Planner", "Relation", "SqlOutput", "CompileOptions", "WindowSpec", "duration_scalar"]
