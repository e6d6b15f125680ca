"""The logical graph and its Python API: ``Dataflow`` and the ``Stream`` handles it returns.

Every stream has an Arrow schema and an event-time column known when the graph is built, so
a wrong column, type or union is a ``PlanError`` at build time naming operator and column.
The named transformations build operators from ``operators/`` (imported when called: the
runtime in ``engine/`` itself never depends on them).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.errors import OptionError, PlanError
from engine.expr import Expr, ExprError, col
from engine.operator import DEAD_LETTER, LATE, MAIN, Operator, Sink
from engine.partitioning import Broadcast, Forward, Hash, Partitioning, Rebalance
from engine.sinks import CallbackSink, CollectSink, CountSink
from engine.sources import EventTimeAssigner, Source, TableSource, dead_letter_schema, output_schema
from engine.timeutil import EVENT_TIME_TYPE, Duration, is_time_type, to_millis

if TYPE_CHECKING:
    from operators.window.aggregates import Agg


@dataclass
class Input:
    """An edge of the logical graph: which node's output feeds this node, partitioned how."""

    node: Node
    output: str
    partitioning: Partitioning | None  # None: forward, or rebalance if parallelism differs


@dataclass(eq=False)
class Node:
    """A node of the logical graph: a source, an operator or a sink."""

    name: str
    inputs: list[Input]
    outputs: dict[str, pa.Schema]
    event_time: dict[str, str | None]
    factory: Callable[[], Operator]
    parallelism: int
    stateless: bool
    source: Source | None = None
    is_sink: bool = False
    keyed: bool = False  # its state is per key: parallel instances need a hash edge


class Dataflow:
    """A dataflow graph, built with sources and ``Stream`` transformations.

    Example:
        >>> import pyarrow as pa
        >>> from engine import Dataflow, InlineExecutor, col
        >>> flow = Dataflow("example")
        >>> readings = flow.from_table("readings", pa.table({"ts": [1000, 2000], "pm10": [40, 160]}), event_time="ts")
        >>> readings.filter(col("pm10") > 100).collect("high")
        'high'
        >>> InlineExecutor().run(flow).table("high")["pm10"].to_pylist()
        [160]
    """

    def __init__(self, name: str, parallelism: int = 1, idle_timeout: Duration | None = None) -> None:
        if parallelism < 1:
            raise OptionError("parallelism", parallelism, "an integer >= 1")
        self.name = name
        self.default_parallelism = parallelism
        self.idle_timeout_ms = None if idle_timeout is None else to_millis(idle_timeout, "idle_timeout", allow_zero=False)
        self.nodes: list[Node] = []
        self._counter = itertools.count(1)

    def _unique_name(self, kind: str, name: str | None) -> str:
        if name is not None:
            if any(node.name == name for node in self.nodes):
                raise PlanError(name, "another operator already has this name")
            return name
        while True:
            candidate = f"{kind}_{next(self._counter)}"
            if all(node.name != candidate for node in self.nodes):
                return candidate

    def _add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def source(
        self,
        name: str,
        source: Source,
        event_time: str,
        out_of_orderness: Duration = 0,
        time_format: str | None = None,
        validate: dict[str, Expr] | None = None,
        parallelism: int | None = None,
    ) -> Stream:
        """Adds a source. Its ``event_time`` column becomes timestamp[ms, UTC] (integers are
        epoch ms, strings are parsed); rows with a null or unparseable time, or failing a
        ``validate`` check (a name -> boolean expression), go to ``dead_letter()``."""
        name = self._unique_name("source", name)
        schema = source.schema
        if schema.get_field_index(event_time) < 0:
            raise PlanError(name, f"event-time column does not exist; columns are {schema.names}", event_time)
        if not is_time_type(schema.field(event_time).type):
            raise PlanError(
                name,
                f"event-time column has type {schema.field(event_time).type}; "
                "it must be a timestamp, date, integer (epoch ms) or string",
                event_time,
            )
        bound = to_millis(out_of_orderness, "out_of_orderness")
        checks = dict(validate or {})
        for reason, check in checks.items():
            _check_boolean(name, check, schema, f"validation '{reason}'")
        stream_schema = output_schema(schema, event_time)
        node = self._add(
            Node(
                name=name,
                inputs=[],
                outputs={MAIN: stream_schema, DEAD_LETTER: dead_letter_schema(schema)},
                event_time={MAIN: event_time, DEAD_LETTER: None},
                factory=lambda: EventTimeAssigner(event_time, bound, time_format, checks),
                parallelism=parallelism or self.default_parallelism,
                stateless=False,
                source=source,
            )
        )
        return Stream(self, node, MAIN)

    def from_table(
        self,
        name: str,
        data: pa.Table | list[pa.RecordBatch],
        event_time: str,
        batch_size: int = 10_000,
        **options: Any,
    ) -> Stream:
        """A bounded source over an in-memory table or list of batches (tests, replays)."""
        return self.source(name, TableSource(data, batch_size), event_time, **options)


@dataclass(frozen=True)
class Stream:
    """A stream of record batches: one output of one node, with its schema and event time."""

    flow: Dataflow
    node: Node
    output: str
    keys: tuple[str, ...] | None = None
    partitioning: Partitioning | None = field(default=None)

    @property
    def schema(self) -> pa.Schema:
        return self.node.outputs[self.output]

    @property
    def event_time(self) -> str:
        column = self.node.event_time[self.output]
        if column is None:
            raise PlanError(self.node.name, f"output '{self.output}' has no event-time column")
        return column

    # ---- graph plumbing -------------------------------------------------------------------

    def _input(self) -> Input:
        return Input(self.node, self.output, self.partitioning)

    def _derive(
        self,
        kind: str,
        name: str | None,
        outputs: dict[str, pa.Schema],
        factory: Callable[[], Operator],
        stateless: bool,
        event_time: dict[str, str | None] | None = None,
        others: list[Stream] | None = None,
        parallelism: int | None = None,
        keyed: bool = False,
        is_sink: bool = False,
    ) -> Node:
        inputs = [self._input()] + [o._input() for o in others or []]
        if event_time is None:
            event_time = {output: (self.event_time if output == MAIN else None) for output in outputs}
        return self.flow._add(
            Node(
                name=name or kind,
                inputs=inputs,
                outputs=outputs,
                event_time=event_time,
                factory=factory,
                parallelism=parallelism
                or (self.node.parallelism if stateless and self.partitioning is None else self.flow.default_parallelism),
                stateless=stateless,
                keyed=keyed,
                is_sink=is_sink,
            )
        )

    def with_parallelism(self, parallelism: int) -> Stream:
        """Sets how many parallel tasks run the operator that produces this stream."""
        if parallelism < 1:
            raise OptionError("parallelism", parallelism, "an integer >= 1")
        if self.node.parallelism != parallelism and not self.node.keyed and not self.node.stateless and self.node.source is None:
            raise PlanError(self.node.name, "a global (unkeyed) stateful operator runs as one task; key_by first")
        self.node.parallelism = parallelism
        return self

    def key_by(self, *keys: str, placement: Mapping[Any, int] | None = None) -> Stream:
        """Partitions the stream by the hash of key columns, for the keyed operator that follows.

        ``placement`` pins values of a single key to tasks (``{"songdo": 0, "yeongjong": 1}``);
        values it does not name are hashed as usual.
        """
        if not keys:
            raise PlanError(self.node.name, "key_by needs at least one key column")
        for key in keys:
            if self.schema.get_field_index(key) < 0:
                raise PlanError(self.node.name, f"key column does not exist; columns are {self.schema.names}", key)
        pinned: tuple[tuple[Any, int], ...] = ()
        if placement:
            if len(keys) != 1:
                raise PlanError(self.node.name, "placement pins values of a single key column; key_by names several")
            for value, task in placement.items():
                if not isinstance(task, int) or task < 0:
                    raise PlanError(self.node.name, f"placement of {value!r} must be a task index >= 0, not {task!r}", keys[0])
            pinned = tuple(placement.items())
        return Stream(self.flow, self.node, self.output, tuple(keys), Hash(tuple(keys), pinned))

    def broadcast(self) -> Stream:
        """Every row goes to every parallel task of the next operator."""
        return Stream(self.flow, self.node, self.output, self.keys, Broadcast())

    def rebalance(self) -> Stream:
        """Batches go round-robin to the parallel tasks of the next operator."""
        return Stream(self.flow, self.node, self.output, self.keys, Rebalance())

    def side_output(self, name: str) -> Stream:
        """A named side output of the operator that produced this stream."""
        if name not in self.node.outputs:
            raise PlanError(self.node.name, f"has no output '{name}'; it has {sorted(self.node.outputs)}")
        return Stream(self.flow, self.node, name)

    def late(self) -> Stream:
        """Rows that came after their window or join could take them."""
        return self.side_output(LATE)

    def dead_letter(self) -> Stream:
        """Rows refused for a null or unparseable event time or a failed validation, with a reason."""
        return self.side_output(DEAD_LETTER)

    # ---- stateless transformations --------------------------------------------------------

    def filter(self, predicate: Expr, name: str | None = None) -> Stream:
        """Keeps the rows where ``predicate`` (a boolean expression) is true."""
        from operators.basic import Filter

        name = self.flow._unique_name("filter", name)
        _check_boolean(name, predicate, self.schema, "predicate")
        node = self._derive("filter", name, {MAIN: self.schema}, lambda: Filter(predicate), stateless=True)
        return Stream(self.flow, node, MAIN)

    def select(self, *columns: str, name: str | None = None, **computed: Expr) -> Stream:
        """Keeps the named columns, in order, and adds computed ones (``name=expression``).

        The event-time column must stay.
        """
        from operators.basic import Project

        name = self.flow._unique_name("select", name)
        exprs: dict[str, Expr] = {c: col(c) for c in columns}
        exprs.update(computed)
        if self.event_time not in exprs:
            raise PlanError(name, "the event-time column must be kept", self.event_time)
        fields = []
        for out_name, expr in exprs.items():
            fields.append(pa.field(out_name, _expr_type(name, expr, self.schema, out_name)))
        schema = pa.schema(fields)
        if schema.field(self.event_time).type != EVENT_TIME_TYPE:
            raise PlanError(name, f"the event-time column must stay {EVENT_TIME_TYPE}", self.event_time)
        node = self._derive("select", name, {MAIN: schema}, lambda: Project(exprs, schema), stateless=True)
        return Stream(self.flow, node, MAIN)

    def with_columns(self, name: str | None = None, **computed: Expr) -> Stream:
        """Adds computed columns (or replaces columns of the same name), keeping the rest."""
        kept = [c for c in self.schema.names if c not in computed]
        return self.select(*kept, name=name, **computed)

    def map_batches(
        self,
        fn: Callable[[pa.RecordBatch], pa.RecordBatch],
        schema: pa.Schema | None = None,
        name: str | None = None,
    ) -> Stream:
        """Applies a function to every batch. Give the output ``schema``; if omitted it is found
        by calling ``fn`` on an empty batch. The event-time column must stay."""
        from operators.basic import MapBatches

        name = self.flow._unique_name("map_batches", name)
        if schema is None:
            try:
                probe = fn(pa.RecordBatch.from_pylist([], schema=self.schema))
            except Exception as exc:  # the user's function: report any failure as a plan error
                raise PlanError(
                    name, f"could not find the output schema by calling the function on an empty batch ({exc}); pass schema="
                ) from exc
            schema = probe.schema
        if schema.get_field_index(self.event_time) < 0 or schema.field(self.event_time).type != EVENT_TIME_TYPE:
            raise PlanError(name, f"the output must keep the event-time column as {EVENT_TIME_TYPE}", self.event_time)
        node = self._derive("map_batches", name, {MAIN: schema}, lambda: MapBatches(fn, schema, name), stateless=True)
        return Stream(self.flow, node, MAIN)

    def process(
        self,
        factory: Callable[[], Operator],
        schema: pa.Schema,
        name: str | None = None,
        *,
        others: Sequence[Stream] = (),
        event_time: str | None = None,
        side_outputs: Mapping[str, tuple[pa.Schema, str | None]] | None = None,
        stateful: bool = True,
    ) -> Stream:
        """Runs a user-defined operator (``factory()`` makes one per task) on this stream and
        ``others`` (its inputs 1, 2, ...). ``schema`` is its main output, whose event time is
        ``event_time`` (default: this stream's); ``side_outputs`` maps a name to (schema, event
        time or None). After ``key_by`` on every input it runs keyed, in parallel; a stateful
        operator without keys runs as one task.
        """
        name = self.flow._unique_name("process", name)
        main_time = event_time or self.event_time
        if schema.get_field_index(main_time) < 0:
            raise PlanError(name, f"event-time column of the output does not exist; columns are {schema.names}", main_time)
        keyed = self.keys is not None and all(o.keys is not None for o in others)
        if any(o.keys is not None for o in others) and not keyed:
            raise PlanError(name, "key_by either every input or none")
        outputs = {MAIN: schema, **{out: spec[0] for out, spec in (side_outputs or {}).items()}}
        times = {MAIN: main_time, **{out: spec[1] for out, spec in (side_outputs or {}).items()}}
        node = self._derive(
            "process",
            name,
            outputs,
            factory,
            stateless=not stateful,
            event_time=times,
            others=list(others),
            parallelism=None if keyed or not stateful else 1,
            keyed=keyed,
        )
        return Stream(self.flow, node, MAIN)

    def validate(self, checks: dict[str, Expr], name: str | None = None) -> Stream:
        """Rows failing a check (a name -> boolean expression) go to ``dead_letter()`` with the
        check's name as reason; the others go on."""
        from operators.basic import Validate

        name = self.flow._unique_name("validate", name)
        for reason, check in checks.items():
            _check_boolean(name, check, self.schema, f"check '{reason}'")
        outputs = {MAIN: self.schema, DEAD_LETTER: dead_letter_schema(self.schema)}
        node = self._derive("validate", name, outputs, lambda: Validate(dict(checks)), stateless=True)
        return Stream(self.flow, node, MAIN)

    def union(self, *others: Stream, name: str | None = None) -> Stream:
        """Merges streams of the same schema and event-time column into one (or of no event
        time, such as dead letters)."""
        from operators.basic import Union

        name = self.flow._unique_name("union", name)
        event_time = self.node.event_time.get(self.output)
        for other in others:
            if other.node.event_time.get(other.output) != event_time:
                raise PlanError(
                    name, f"event-time columns differ: '{self.event_time}' and '{other.event_time}'", other.event_time
                )
            for f in self.schema:
                index = other.schema.get_field_index(f.name)
                if index < 0:
                    raise PlanError(name, f"'{other.node.name}' has no such column", f.name)
                if other.schema.field(index).type != f.type:
                    raise PlanError(
                        name, f"type {other.schema.field(index).type} of '{other.node.name}' differs from {f.type}", f.name
                    )
            extra = [c for c in other.schema.names if self.schema.get_field_index(c) < 0]
            if extra:
                raise PlanError(name, f"'{other.node.name}' has columns the others lack: {extra}", extra[0])
        node = self._derive(
            "union",
            name,
            {MAIN: self.schema},
            Union,
            stateless=True,
            event_time={MAIN: event_time},
            others=list(others),
            parallelism=self.flow.default_parallelism,
        )
        return Stream(self.flow, node, MAIN)

    # ---- stateful transformations ---------------------------------------------------------

    def window(
        self,
        spec: Any,
        aggregates: dict[str, tuple[str, str | None]] | list[Agg],
        name: str | None = None,
    ) -> Stream:
        """Aggregates rows per window of event time (and per key after ``key_by``).

        ``spec`` is ``Tumbling``, ``Hopping`` or ``Session`` (from ``operators``). The output has
        the keys, window_start, window_end, window_time (its event time), the aggregates and
        is_update; ``late()`` has the rows that came after their window's allowed lateness.
        """
        from operators.window import build_window

        name = self.flow._unique_name("window", name)
        keys = list(self.keys or ())
        factory, schema = build_window(name, spec, keys, aggregates, self.schema, self.event_time)
        outputs = {MAIN: schema, LATE: self.schema}
        node = self._derive(
            "window",
            name,
            outputs,
            factory,
            stateless=False,
            event_time={MAIN: "window_time", LATE: self.event_time},
            parallelism=None if keys else 1,
            keyed=bool(keys),
        )
        return Stream(self.flow, node, MAIN)

    def asof_join(
        self,
        right: Stream,
        tolerance: Duration | None = None,
        right_prefix: str = "right_",
        name: str | None = None,
    ) -> Stream:
        """Enriches each row with the latest ``right`` row of the same key at or before its event
        time (and not older than ``tolerance``); right columns are null where none matches.

        Both sides must be ``key_by`` with keys of the same types.
        """
        from operators.join.asof import AsofJoin
        from operators.join.common import check_keys, join_schema, right_columns

        name = self.flow._unique_name("asof_join", name)
        left_keys, right_keys = list(self.keys or ()), list(right.keys or ())
        check_keys(name, self.schema, right.schema, left_keys, right_keys)
        tolerance_ms = None if tolerance is None else to_millis(tolerance, "tolerance")
        pairs = right_columns(name, self.schema, right.schema, right_keys, right_prefix)
        schema = join_schema(self.schema, right.schema, pairs)
        left_time, right_time, right_schema = self.event_time, right.event_time, right.schema
        node = self._derive(
            "asof_join",
            name,
            {MAIN: schema, LATE: self.schema},
            lambda: AsofJoin(left_keys, right_keys, left_time, right_time, tolerance_ms, pairs, right_schema, schema),
            stateless=False,
            others=[right],
            keyed=True,
            event_time={MAIN: left_time, LATE: left_time},
        )
        return Stream(self.flow, node, MAIN)

    def interval_join(
        self,
        right: Stream,
        within: Duration | None = None,
        lower: Duration | None = None,
        upper: Duration | None = None,
        right_prefix: str = "right_",
        name: str | None = None,
    ) -> Stream:
        """Pairs rows of the same key with ``lower <= left time - right time <= upper``.

        ``within=d`` is short for ``lower=-d, upper=d``; ``lower`` may be given as a negative
        number of ms. Both sides must be ``key_by`` with keys of the same types.
        """
        from operators.join.common import check_keys, join_schema, right_columns
        from operators.join.interval import LATE_RIGHT, IntervalJoin

        name = self.flow._unique_name("interval_join", name)
        left_keys, right_keys = list(self.keys or ()), list(right.keys or ())
        check_keys(name, self.schema, right.schema, left_keys, right_keys)
        if within is not None:
            bound = to_millis(within, "within")
            lower_ms, upper_ms = -bound, bound
        elif lower is not None and upper is not None:
            lower_ms = lower if isinstance(lower, int) else _signed_millis(lower, "lower")
            upper_ms = upper if isinstance(upper, int) else _signed_millis(upper, "upper")
        else:
            raise OptionError("within", within, "a duration, or both lower and upper")
        if lower_ms > upper_ms:
            raise OptionError("lower", lower, f"at most upper ({upper_ms} ms)")
        pairs = right_columns(name, self.schema, right.schema, right_keys, right_prefix)
        schema = join_schema(self.schema, right.schema, pairs)
        left_time, right_time = self.event_time, right.event_time
        node = self._derive(
            "interval_join",
            name,
            {MAIN: schema, LATE: self.schema, LATE_RIGHT: right.schema},
            lambda: IntervalJoin(left_keys, right_keys, left_time, right_time, lower_ms, upper_ms, pairs, schema),
            stateless=False,
            others=[right],
            keyed=True,
            event_time={MAIN: left_time, LATE: left_time, LATE_RIGHT: right_time},
        )
        return Stream(self.flow, node, MAIN)

    # ---- sinks ----------------------------------------------------------------------------

    def sink(self, sink: Sink | Callable[[pa.RecordBatch], None], name: str | None = None) -> str:
        """Ends the stream in a sink (a ``Sink`` or a function of each batch); returns its name."""
        name = self.flow._unique_name("sink", name)
        factory: Callable[[], Operator]
        if isinstance(sink, Sink):
            instance = sink
            factory = lambda: instance
            if self.node.parallelism > 1:
                raise PlanError(name, "a sink instance cannot run as several tasks; pass a function or use parallelism 1")
        elif callable(sink):
            factory = lambda: CallbackSink(sink)
        else:
            raise PlanError(name, f"a sink must be a Sink or a function of a batch, not {type(sink).__name__}")
        self._derive("sink", name, {}, factory, stateless=True, is_sink=True)
        return name

    def sink_each(self, factory: Callable[[], Sink], name: str | None = None, parallelism: int | None = None) -> str:
        """Ends the stream in sinks made by ``factory()``, one per task (parallel sinks)."""
        name = self.flow._unique_name("sink", name)
        if not callable(factory):
            raise PlanError(name, f"sink_each needs a function that makes a Sink, not {type(factory).__name__}")
        self._derive("sink", name, {}, factory, stateless=True, is_sink=True, parallelism=parallelism)
        return name

    def collect(self, name: str | None = None, parallelism: int | None = None) -> str:
        """A sink that keeps every row; ``JobResult.table(name)`` returns them. Returns its name.

        It runs as many tasks as the stream's operator unless ``parallelism`` says otherwise
        (``1``: one task gathers what all the upstream tasks send).
        """
        name = self.flow._unique_name("collect", name)
        schema = self.schema
        self._derive("collect", name, {}, lambda: CollectSink(schema), stateless=True, is_sink=True, parallelism=parallelism)
        return name

    def count(self, name: str | None = None) -> str:
        """A sink that only counts rows and batches (for benchmarks). Returns its name."""
        name = self.flow._unique_name("count", name)
        self._derive("count", name, {}, CountSink, stateless=True, is_sink=True)
        return name


def _signed_millis(value: Duration, option: str) -> int:
    """An interval-join bound given as a timedelta, of either sign, in ms (to_millis refuses
    negative durations)."""
    if isinstance(value, timedelta) and value < timedelta(0):
        return -to_millis(-value, option)
    return to_millis(value, option)


def _expr_type(operator: str, expr: Expr, schema: pa.Schema, what: str) -> pa.DataType:
    if not isinstance(expr, Expr):
        raise PlanError(operator, f"{what} must be an expression built with col()/lit()/call(), not {type(expr).__name__}")
    try:
        return expr.output_type(schema)
    except ExprError as exc:
        raise PlanError(operator, str(exc), exc.column) from None


def _check_boolean(operator: str, expr: Expr, schema: pa.Schema, what: str) -> None:
    result_type = _expr_type(operator, expr, schema, what)
    if result_type != pa.bool_():
        raise PlanError(operator, f"{what} {expr!r} gives {result_type}, not a boolean")


__all__ = ["Dataflow", "Stream", "Node", "Input", "Forward", "Hash", "Broadcast", "Rebalance"]
