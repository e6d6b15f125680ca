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
            # A stream without event time (a changelog, a regular join's output) stays without.
            own = self.node.event_time.get(self.output)
            event_time = {output: (own if output == MAIN else None) for output in outputs}
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

        The event-time column must stay (a stream without event time has none to keep).
        """
        exprs: dict[str, Expr] = {c: col(c) for c in columns}
        exprs.update(computed)
        return self.project(exprs, name)

    def project(self, exprs: Mapping[str, Expr], name: str | None = None) -> Stream:
        """``select`` with the output columns as a mapping (name -> expression), for names
        that cannot be keyword arguments (``name`` itself, ``EXPR$0``)."""
        from operators.basic import Project

        name = self.flow._unique_name("select", name)
        exprs = dict(exprs)
        time = self.node.event_time.get(self.output)
        if time is not None and time not in exprs:
            raise PlanError(name, "the event-time column must be kept", time)
        fields = []
        for out_name, expr in exprs.items():
            fields.append(pa.field(out_name, _expr_type(name, expr, self.schema, out_name)))
        schema = pa.schema(fields)
        if time is not None and schema.field(time).type != EVENT_TIME_TYPE:
            raise PlanError(name, f"the event-time column must stay {EVENT_TIME_TYPE}", time)
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
        timeless: bool = False,
    ) -> Stream:
        """Runs a user-defined operator (``factory()`` makes one per task) on this stream and
        ``others`` (its inputs 1, 2, ...). ``schema`` is its main output, whose event time is
        ``event_time`` (default: this stream's); ``side_outputs`` maps a name to (schema, event
        time or None). After ``key_by`` on every input it runs keyed, in parallel; a stateful
        operator without keys runs as one task. ``timeless``: the output has no event time (a
        changelog, say); only stateless operators and sinks may follow it.
        """
        name = self.flow._unique_name("process", name)
        main_time = None if timeless else event_time or self.event_time
        if main_time is not None and schema.get_field_index(main_time) < 0:
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

    def join(
        self,
        right: Stream,
        condition: Expr | None = None,
        ttl: Duration | None = None,
        right_prefix: str = "right_",
        name: str | None = None,
    ) -> Stream:
        """Regular (unbounded) inner equi-join on the keys, as Flink SQL's join of two
        append-only streams: every pair of rows of the same key, whenever each came, emitted
        once, when its second row arrives; ``condition`` (boolean, over the output columns)
        filters the pairs.

        Both sides must be ``key_by`` with keys of the same types. The output has the left
        columns, then the right's but its keys (renamed with ``right_prefix`` on a clash). It
        has no event time, as in Flink where a regular join loses its time attribute: a pair
        comes out when its second row does, however old the first, so it may be far behind
        the watermark (filter, select, sink or join it again; windows need an event time).

        Every row is kept: without ``ttl`` the state grows without bound. With ``ttl`` (like
        Flink's table.exec.state.ttl, but in event time), rows older than watermark - ttl are
        forgotten and pair with nothing that comes after.

        Example:
            >>> import pyarrow as pa
            >>> from engine import Dataflow, InlineExecutor
            >>> flow = Dataflow("join")
            >>> cameras = flow.from_table("cameras", pa.table({"ts": [1000, 2000], "d": ["songdo", "cheongna"]}), event_time="ts")
            >>> alerts = flow.from_table("alerts", pa.table({"ts": [9000], "d": ["songdo"], "level": [3]}), event_time="ts")
            >>> cameras.key_by("d").join(alerts.key_by("d")).collect("out")
            'out'
            >>> InlineExecutor().run(flow).table("out").select(["d", "level"]).to_pylist()
            [{'d': 'songdo', 'level': 3}]
        """
        from operators.join.common import check_keys, join_schema, right_columns
        from operators.join.regular import RegularJoin

        name = self.flow._unique_name("join", name)
        left_keys, right_keys = list(self.keys or ()), list(right.keys or ())
        check_keys(name, self.schema, right.schema, left_keys, right_keys)
        pairs = right_columns(name, self.schema, right.schema, right_keys, right_prefix)
        schema = join_schema(self.schema, right.schema, pairs)
        if condition is not None:
            _check_boolean(name, condition, schema, "condition")
        ttl_ms = None if ttl is None else to_millis(ttl, "ttl", allow_zero=False)
        left_time = right_time = None
        if ttl_ms is not None:
            # Only a TTL reads the inputs' event time: a join's output (which has none) may be joined again.
            left_time, right_time = self.node.event_time.get(self.output), right.node.event_time.get(right.output)
            for side, stream, column in (("left", self, left_time), ("right", right, right_time)):
                if column is None:
                    raise PlanError(name, f"ttl expires rows by event time, but the {side} input '{stream.node.name}' has none")
        left_schema, right_schema = self.schema, right.schema
        node = self._derive(
            "join",
            name,
            {MAIN: schema},
            lambda: RegularJoin(
                left_keys, right_keys, pairs, left_schema, right_schema, schema, condition, ttl_ms, left_time, right_time
            ),
            stateless=False,
            others=[right],
            keyed=True,
            event_time={MAIN: None},
        )
        return Stream(self.flow, node, MAIN)

    def window_join(
        self,
        right: Stream,
        left_window: tuple[str, str] = ("window_start", "window_end"),
        right_window: tuple[str, str] = ("window_start", "window_end"),
        condition: Expr | None = None,
        how: str = "inner",
        right_prefix: str = "right_",
        name: str | None = None,
        keep_right_keys: bool = False,
    ) -> Stream:
        """Window join, as Flink SQL's: joins rows of the same window, given on each side by its
        (start, end) columns, and of the same keys, when the watermark reaches the window's
        end - 1 ms (when windows fire, so window aggregates of that window are in). Both sides
        are typically window aggregates (or rows tagged with their window) of the same windows.

        ``condition`` (boolean, over the output columns) filters the pairs; ``how`` is
        ``"inner"``, ``"left"``, ``"right"`` or ``"full"``, outer sides padded with nulls (an
        unmatched right row fills the left's key, window and event-time columns with its own).
        ``key_by`` both sides (keys of the same types) for a keyed, parallel join, or neither
        for a global one (one task). The output has the left columns, then the right's but its
        keys and window start/end (renamed with ``right_prefix`` on a clash); its event time is
        the left's. A row that comes after its window fired goes to ``late()`` (left) or
        ``side_output("late_right")``.

        ``keep_right_keys=True`` keeps the right's keys and window start/end as columns of their
        own too (renamed with ``right_prefix`` on a clash, like every right column): the right
        row's values, so null for an unmatched left row (of a left or full join), as SQL wants
        of the right side's key. The left's key and window columns are as without it.

        Example:
            >>> import pyarrow as pa
            >>> from engine import Dataflow, InlineExecutor
            >>> from operators import Tumbling, agg
            >>> flow = Dataflow("window_join")
            >>> cars = flow.from_table("cars", pa.table({"ts": [1000, 2000, 12000], "d": ["a", "a", "a"]}), event_time="ts")
            >>> rain = flow.from_table("rain", pa.table({"ts": [3000], "d": ["a"], "mm": [2.5]}), event_time="ts")
            >>> counts = cars.key_by("d").window(Tumbling(10_000), [agg("count", name="cars")])
            >>> rainfall = rain.key_by("d").window(Tumbling(10_000), [agg("sum", "mm", name="rain")])
            >>> counts.key_by("d").window_join(rainfall.key_by("d")).collect("out")
            'out'
            >>> InlineExecutor().run(flow).table("out").select(["d", "cars", "rain"]).to_pylist()
            [{'d': 'a', 'cars': 2, 'rain': 2.5}]
        """
        from operators.join.common import check_keys, join_schema, right_columns
        from operators.join.interval import LATE_RIGHT
        from operators.join.window import WINDOW_JOIN_TYPES, WindowJoin

        name = self.flow._unique_name("window_join", name)
        if how not in WINDOW_JOIN_TYPES:
            raise OptionError("how", how, " or ".join(repr(h) for h in WINDOW_JOIN_TYPES))
        if not isinstance(keep_right_keys, bool):
            raise OptionError("keep_right_keys", keep_right_keys, "True or False")
        if (self.keys is None) != (right.keys is None):
            side = "left" if self.keys is not None else "right"
            raise PlanError(name, f"only the {side} side is key_by'd: key_by both sides (a keyed join) or neither (a global one)")
        left_keys, right_keys = list(self.keys or ()), list(right.keys or ())
        if left_keys:
            check_keys(name, self.schema, right.schema, left_keys, right_keys)
        for option, window in (("left_window", left_window), ("right_window", right_window)):
            if not isinstance(window, tuple | list) or len(window) != 2 or not all(isinstance(c, str) for c in window):
                raise OptionError(option, window, "a (start column, end column) pair")
        for side, schema_of_side, window in (("left", self.schema, left_window), ("right", right.schema, right_window)):
            for column in window:
                if schema_of_side.get_field_index(column) < 0:
                    raise PlanError(name, f"{side} window column does not exist; columns are {schema_of_side.names}", column)
                if not pa.types.is_timestamp(schema_of_side.field(column).type):
                    raise PlanError(
                        name, f"{side} window column has type {schema_of_side.field(column).type}; it must be a timestamp", column
                    )
        for left_column, right_column in zip(left_window, right_window, strict=True):
            left_type, right_type = self.schema.field(left_column).type, right.schema.field(right_column).type
            if left_type != right_type:
                raise PlanError(
                    name,
                    f"window columns differ: left '{left_column}' is {left_type}, right '{right_column}' is {right_type}",
                    right_column,
                )
        left_time = self.event_time
        right_time = right.node.event_time.get(right.output)
        dropped = [] if keep_right_keys else right_keys + list(right_window)
        pairs = right_columns(name, self.schema, right.schema, dropped, right_prefix)
        schema = join_schema(self.schema, right.schema, pairs)
        if condition is not None:
            _check_boolean(name, condition, schema, "condition")
        left_from_right = list(zip(left_keys, right_keys, strict=True)) + list(zip(left_window, right_window, strict=True))
        if how in ("right", "full") and left_time not in dict(left_from_right):
            # An unmatched right row needs an event time in the left's column: its own.
            if right_time is None or right.schema.field(right_time).type != self.schema.field(left_time).type:
                raise PlanError(
                    name,
                    f"a {how} join gives unmatched right rows their own event time in this left column; the right has "
                    f"no event-time column of type {self.schema.field(left_time).type}",
                    left_time,
                )
            left_from_right.append((left_time, right_time))
        keyed = bool(left_keys)
        left_schema, right_schema = self.schema, right.schema
        windows = ((left_window[0], left_window[1]), (right_window[0], right_window[1]))
        node = self._derive(
            "window_join",
            name,
            {MAIN: schema, LATE: left_schema, LATE_RIGHT: right_schema},
            lambda: WindowJoin(
                how,
                left_keys,
                right_keys,
                windows[0],
                windows[1],
                pairs,
                left_from_right,
                left_schema,
                right_schema,
                schema,
                condition,
            ),
            stateless=False,
            others=[right],
            parallelism=None if keyed else 1,
            keyed=keyed,
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
