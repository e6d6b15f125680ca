"""Aggregates of windows, computed in two phases: a partial per batch, merged when a window fires.

Each batch is reduced at once to one partial row per (key, bin) with ``Table.group_by``, so
a window's state is a few rows per key, not its raw rows. Partials merge into partials
(compaction) and finally into the result columns. ``count_distinct`` keeps the distinct
(key, bin, value) rows instead, since a distinct count cannot be merged from counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import PlanError

AggFunction = Literal["count", "sum", "min", "max", "mean", "count_distinct", "first", "last"]
AGG_FUNCTIONS: tuple[str, ...] = ("count", "sum", "min", "max", "mean", "count_distinct", "first", "last")
_KEEP_NULLS = pc.ScalarAggregateOptions(skip_nulls=False)


def _in_time_order(times: pa.ChunkedArray | pa.Array) -> bool:
    """Whether a column of times (timestamps or integers) is non-decreasing, without nulls."""
    if times.null_count or len(times) < 2:
        return times.null_count == 0
    try:
        chunks = [times] if isinstance(times, pa.Array) else times.chunks
        values = np.concatenate([pc.cast(chunk, pa.int64()).to_numpy() for chunk in chunks])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False  # not a time nor an integer: let the sort decide
    return bool((values[1:] >= values[:-1]).all())


@dataclass(frozen=True)
class Agg:
    """One aggregate of a window: ``function`` over ``column`` (None: count rows), named ``name``."""

    function: str
    column: str | None
    name: str


def agg(function: AggFunction, column: str | None = None, name: str | None = None) -> Agg:
    """Declares an aggregate, e.g. ``agg("mean", "confidence", name="avg_confidence")``.

    ``first`` and ``last`` take the value of the row with the earliest / latest event time.
    ``count`` with no column counts rows; with a column, its non-null values.
    """
    if function not in AGG_FUNCTIONS:
        raise PlanError("window", f"unknown aggregate '{function}'; allowed: {', '.join(AGG_FUNCTIONS)}")
    if column is None and function != "count":
        raise PlanError("window", f"aggregate '{function}' needs a column")
    return Agg(function, column, name or (f"{column}_{function}" if column else function))


def normalize_aggs(aggregates: dict[str, tuple[str, str | None]] | list[Agg]) -> list[Agg]:
    """Accepts ``[agg(...)]`` or ``{"name": ("function", "column")}``."""
    if isinstance(aggregates, dict):
        return [agg(function, column, name) for name, (function, column) in aggregates.items()]  # type: ignore[arg-type]
    return list(aggregates)


@dataclass
class Partials:
    """Partial aggregates: one table of mergeable columns, one table per distinct count."""

    main: pa.Table
    distinct: list[pa.Table] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return self.main.num_rows

    def filter(self, mask_of: Callable[[pa.Table], pa.Array]) -> Partials:
        """Keeps rows where ``mask_of(table)`` is true, in every table."""
        return Partials(self.main.filter(mask_of(self.main)), [t.filter(mask_of(t)) for t in self.distinct])


def partials_state(parts: Sequence[Partials]) -> dict[str, Any] | None:
    """A list of partials as checkpoint state (None for none): the rows of all of them as one
    table (and one per distinct count) and each part's row counts.

    The parts are kept apart rather than merged, so that a restored operator merges them when
    and in the order the original would have: float sums then add up to the same bits.
    """
    if not parts:
        return None
    tables = [[p.main, *p.distinct] for p in parts]
    return {
        "main": pa.concat_tables([t[0] for t in tables]),
        "distinct": [pa.concat_tables([t[i] for t in tables]) for i in range(1, len(tables[0]))],
        "rows": np.array([[t.num_rows for t in part] for part in tables], dtype=np.int64),
    }


def partials_of_state(state: dict[str, Any] | None) -> list[Partials]:
    """The list of partials ``partials_state`` packed (zero-copy slices of its tables)."""
    if state is None:
        return []
    rows = np.asarray(state["rows"], dtype=np.int64)
    starts = np.cumsum(rows, axis=0) - rows
    tables = [state["main"], *state["distinct"]]
    parts = []
    for part_starts, part_rows in zip(starts.tolist(), rows.tolist(), strict=True):
        sliced = [t.slice(a, n) for t, a, n in zip(tables, part_starts, part_rows, strict=True)]
        parts.append(Partials(sliced[0], sliced[1:]))
    return parts


class TwoPhaseAggregate:
    """Computes, merges and finalises the partial aggregates of a list of :class:`Agg`."""

    def __init__(self, operator: str, aggs: list[Agg], schema: pa.Schema, time_column: str) -> None:
        self.aggs = aggs
        self.time_column = time_column
        names = [a.name for a in aggs]
        for a in aggs:
            if a.column is not None and schema.get_field_index(a.column) < 0:
                raise PlanError(operator, f"aggregate '{a.name}' reads an unknown column", a.column)
            if names.count(a.name) > 1:
                raise PlanError(operator, f"two aggregates are named '{a.name}'", a.name)
        self.output_fields = [self._output_field(operator, a, schema) for a in aggs]
        self.ordered = any(a.function in ("first", "last") for a in aggs)
        # (input column, function, keep nulls) per partial column, and how partial columns merge.
        # A flag rather than the options object: pyarrow's options do not pickle, and plans
        # travel to Ray actors.
        self._partial: list[tuple[str | list[str], str, bool]] = []
        self._merge: list[str] = []
        self._distinct_columns: list[str] = []
        for a in aggs:
            if a.function == "count":
                self._partial.append(([], "count_all", False) if a.column is None else (a.column, "count", False))
                self._merge.append("sum")
            elif a.function in ("sum", "min", "max"):
                self._partial.append((a.column or "", a.function, False))
                self._merge.append(a.function)
            elif a.function == "mean":
                self._partial += [(a.column or "", "sum", False), (a.column or "", "count", False)]
                self._merge += ["sum", "sum"]
            elif a.function in ("first", "last"):
                self._partial += [
                    (time_column, "min" if a.function == "first" else "max", False),
                    (a.column or "", a.function, True),
                ]
                self._merge += ["min" if a.function == "first" else "max", a.function]
            else:  # count_distinct
                self._distinct_columns.append(a.column or "")
        self._partial_names = [f"__p{i}" for i in range(len(self._partial))]

    @staticmethod
    def _output_field(operator: str, a: Agg, schema: pa.Schema) -> pa.Field:
        if a.function in ("count", "count_distinct"):
            return pa.field(a.name, pa.int64())
        data_type = schema.field(a.column).type  # type: ignore[arg-type]
        if a.function == "mean":
            if not (pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type)):
                raise PlanError(operator, f"mean of a {data_type} column is not defined", a.column)
            return pa.field(a.name, pa.float64())
        if a.function == "sum":
            if pa.types.is_integer(data_type):
                return pa.field(a.name, pa.uint64() if pa.types.is_unsigned_integer(data_type) else pa.int64())
            if pa.types.is_floating(data_type):
                return pa.field(a.name, pa.float64())
            if pa.types.is_decimal(data_type):
                return pa.field(a.name, data_type)
            raise PlanError(operator, f"sum of a {data_type} column is not defined", a.column)
        return pa.field(a.name, data_type)

    def partial(
        self,
        table: pa.Table,
        group: list[str],
        extra: Sequence[tuple[str, str, str]] = (),
        time_ordered_groups: bool = False,
    ) -> Partials:
        """Reduces raw rows to partial aggregates per ``group``.

        ``extra`` adds (column, function, name) aggregations the caller keeps beside the
        partials (a session's first and last time), carried through ``merge``.
        ``time_ordered_groups``: the caller knows that the rows of each group already come in
        time order (sorted by group and time), so ``first``/``last`` need no sort by time; the
        groups then come out in the order of the table, not of their earliest row.

        Group-bys here run on one thread: on a batch of 10k rows the thread pool costs more
        than it saves (330 vs 475 us measured), and tasks already run one per core.
        """
        if self.ordered and not time_ordered_groups and not _in_time_order(table.column(self.time_column)):
            # A stable sort: rows of equal time keep their order (and a sorted table is left
            # as it is, hence the check above, which costs far less than the sort).
            table = table.sort_by(self.time_column)
        grouped = table.group_by(group, use_threads=False)
        partial = [(c, f, _KEEP_NULLS) if keep else (c, f) for c, f, keep in self._partial]
        main = grouped.aggregate(partial + [(c, f) for c, f, _ in extra])
        main = main.rename_columns(group + self._partial_names + [name for _, _, name in extra])
        distinct = [
            table.group_by(group + [c], use_threads=False).aggregate([]).rename_columns(group + ["__v"])
            for c in self._distinct_columns
        ]
        return Partials(main, distinct)

    def merge(
        self, partials: list[Partials], group: list[str], extra: Sequence[tuple[str, str]] = (), distinct: bool = True
    ) -> Partials:
        """Merges partials into one partial row per ``group``; ``extra`` (name, function) merges
        the caller's extra columns. ``distinct=False``: the distinct tables are only put
        together, not reduced to unique rows (for a caller that counts distinct values itself)."""
        main = pa.concat_tables([p.main for p in partials]) if len(partials) > 1 else partials[0].main
        aggregations = [
            (name, fn, _KEEP_NULLS) if fn in ("first", "last") else (name, fn)
            for name, fn in zip(self._partial_names, self._merge, strict=True)
        ] + list(extra)
        names = group + self._partial_names + [name for name, _ in extra]
        if not self.ordered:
            merged = main.group_by(group, use_threads=False).aggregate(aggregations).rename_columns(names)
        else:
            # Merging first needs the partials ordered by their earliest time, last by their
            # latest time: one pass per kind present, aligned by group, each kind's value
            # columns taken from its own pass.
            merged = None
            for kind in ("first", "last"):
                times = self._time_partials(kind)
                if not times:
                    continue
                ordered = main.sort_by([(times[0], "ascending")])
                result = ordered.group_by(group, use_threads=False).aggregate(aggregations)
                result = result.rename_columns(names)
                if merged is None:
                    merged = result
                    continue
                if group:
                    order = [(g, "ascending") for g in group]
                    merged, result = merged.sort_by(order), result.sort_by(order)
                for i, fn in enumerate(self._merge):
                    if fn == kind:
                        name = self._partial_names[i]
                        merged = merged.set_column(merged.schema.get_field_index(name), name, result.column(name))
        if not distinct:
            return Partials(merged, self._concat(partials).distinct)
        distinct_tables = [
            pa.concat_tables([p.distinct[i] for p in partials])
            .group_by(group + ["__v"], use_threads=False)
            .aggregate([])
            .rename_columns(group + ["__v"])
            for i in range(len(self._distinct_columns))
        ]
        return Partials(merged, distinct_tables)

    def _concat(self, partials: list[Partials]) -> Partials:
        """The rows of several partials as one, in order (nothing merged)."""
        if len(partials) == 1:
            return partials[0]
        return Partials(
            pa.concat_tables([p.main for p in partials]),
            [pa.concat_tables([p.distinct[i] for p in partials]) for i in range(len(self._distinct_columns))],
        )

    def _time_partials(self, kind: str) -> list[str]:
        """The time partials of the ``first`` (or ``last``) aggregates: each is followed by its value."""
        return [self._partial_names[i - 1] for i, fn in enumerate(self._merge) if fn == kind]

    def _as_merged(self, part: Partials, group: list[str], by_group_next: bool = False) -> Partials:
        """What ``merge([part], group)`` gives for a part with one row per group (and one per
        group and value in its distinct tables): the same rows, in the order merge puts them
        (by the time partial when ``first``/``last`` are ordered, by group when both are),
        without a group-by. ``by_group_next``: the caller sorts by group next (any order will do)."""
        main = part.main
        kinds = [kind for kind in ("first", "last") if self._time_partials(kind)]
        if by_group_next and group:
            pass
        elif len(kinds) == 2 and group:
            main = main.sort_by([(g, "ascending") for g in group])
        elif kinds:
            main = main.sort_by([(self._time_partials(kinds[0])[0], "ascending")])
        return Partials(main, part.distinct)

    def finalize(self, partials: list[Partials], group: list[str], unique: bool = False) -> pa.Table:
        """The result: the ``group`` columns, then one column per aggregate, in order.

        ``unique``: the caller knows that the partials hold one row per group between them
        (and one per group and value in the distinct tables), so that merging them changes
        nothing but the order: the group-bys of the merge are skipped, the order kept.
        """
        if unique:
            whole = partials[0] if len(partials) == 1 else self._concat(partials)
            merged = self._as_merged(whole, group, by_group_next=bool(self._distinct_columns))
        else:
            merged = self.merge(partials, group, distinct=False)
        main = merged.main
        distinct_counts: list[pa.ChunkedArray] = []
        if merged.distinct:
            # Every group has rows in each distinct table, so sorting both by the group
            # columns aligns them row for row.
            order = [(g, "ascending") for g in group]
            main = main.sort_by(order) if group else main
            for table in merged.distinct:
                # Unique (group, value) rows are counted; otherwise their distinct values, in
                # one group-by (both leave nulls out, as the count of distinct rows did).
                counted = table.group_by(group, use_threads=False).aggregate([("__v", "count" if unique else "count_distinct")])
                counted = counted.sort_by(order) if group else counted
                distinct_counts.append(counted.column(counted.num_columns - 1))
        columns: list[pa.ChunkedArray] = [main.column(g) for g in group]
        position = 0
        distinct_index = 0
        for a, out_field in zip(self.aggs, self.output_fields, strict=True):
            if a.function == "count_distinct":
                columns.append(distinct_counts[distinct_index])
                distinct_index += 1
                continue
            value = main.column(self._partial_names[position])
            if a.function == "mean":
                count = main.column(self._partial_names[position + 1])
                value = pc.divide(value.cast(pa.float64()), pc.if_else(pc.equal(count, 0), None, count).cast(pa.float64()))
                position += 2
            elif a.function in ("first", "last"):
                value = main.column(self._partial_names[position + 1])
                position += 2
            else:
                position += 1
            columns.append(value if value.type == out_field.type else value.cast(out_field.type))
        names = group + [a.name for a in self.aggs]
        return pa.Table.from_arrays(columns, names=names)
