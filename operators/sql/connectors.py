"""Connectors: what a ``CREATE TABLE ... WITH ('connector' = ...)`` reads from or writes to.

Built in: ``memory`` (tables handed to the compiler), ``file`` (CSV, Parquet, JSON lines or
Arrow IPC files), and the sinks ``collect`` (rows kept for the caller) and ``blackhole``
(rows counted). Other layers register theirs: the city's streams (``actors``) and the
Nexmark generator (``benchmarks``), so that ``operators`` imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from sqlglot import exp

from engine.dataflow import Dataflow, Stream
from engine.expr import Expr, col
from engine.sources import Source, TableSource
from engine.timeutil import EVENT_TIME_TYPE, normalize_event_time
from operators.sql.errors import SourceText, SqlError


@dataclass
class TableDef:
    """A table declared by CREATE TABLE: its columns, event time and connector options."""

    name: str
    schema: pa.Schema
    time: str | None
    out_of_orderness_ms: int
    options: dict[str, str]
    node: exp.Expr
    not_null: tuple[str, ...] = ()  # rows with NULL in these columns go to the dead letters

    @property
    def connector(self) -> str:
        return self.options.get("connector", "")


@dataclass(frozen=True)
class SourceConnector:
    """A source connector: the options it takes (name -> what it means), those it needs, and
    ``make(table, connectors) -> Source`` whose batches have the table's declared columns
    (the event-time column may stay raw: strings or epoch ms are normalised by the engine)."""

    name: str
    make: Callable[[TableDef, Connectors], Source]
    options: dict[str, str]
    required: tuple[str, ...] = ()
    parallel: bool = False  # whether it may read with several tasks
    partitions: Callable[[TableDef], int] | None = None  # a fixed number of tasks (one per camera group...)


_SINKS = {"collect": "keeps every row for the caller", "blackhole": "counts rows and drops them (benchmarks)"}


@dataclass
class Connectors:
    """The connectors a SQL job may use, and what they need from the caller (in-memory
    tables, the folder that relative file paths start from)."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)
    sources: dict[str, SourceConnector] = field(default_factory=dict)
    sinks: dict[str, str] = field(default_factory=lambda: dict(_SINKS))
    files: dict[str, Path] = field(default_factory=dict)  # table name -> data file read instead of its connector
    on_batch: Callable[[str], Callable[[pa.RecordBatch], None]] | None = None  # collect sinks call this instead

    def __post_init__(self) -> None:
        common = {"batch.size": "rows per batch (default 10000)"}
        self.register(SourceConnector("memory", _memory, {"table": "name of a table given to the compiler", **common}))
        self.register(
            SourceConnector(
                "file",
                _file,
                {"path": "file path (relative to the SQL file)", "format": "csv, parquet, json (lines) or arrow", **common},
                ("path",),
            )
        )

    def register(self, connector: SourceConnector) -> None:
        self.sources[connector.name] = connector

    def is_sink(self, table: TableDef) -> bool:
        return table.connector in self.sinks

    def check(self, src: SourceText, table: TableDef) -> None:
        """The connector exists and its options are known and complete (at CREATE TABLE)."""
        name = table.connector
        if not name:
            raise src.error(
                f"table '{table.name}' needs WITH ('connector' = ...)", table.node.this, f"connectors: {self._known()}"
            )
        if name in self.sinks:
            extra = sorted(set(table.options) - {"connector"})
            if extra:
                raise src.error(f"sink connector '{name}' takes no option '{extra[0]}'", table.node)
            return
        connector = self.sources.get(name)
        if connector is None:
            raise src.error(f"unknown connector '{name}'", _option_node(table, "connector"), f"connectors: {self._known()}")
        allowed = {"connector", *connector.options}
        for option in table.options:
            if option not in allowed:
                described = "; ".join(f"'{k}': {v}" for k, v in connector.options.items())
                raise src.error(
                    f"connector '{name}' has no option '{option}'", _option_node(table, option), f"options: {described}"
                )
        for option in connector.required:
            if option not in table.options:
                raise src.error(f"connector '{name}' needs the option '{option}'", table.node, connector.options[option])

    def _known(self) -> str:
        return ", ".join([*self.sources, *self.sinks])

    def source(self, src: SourceText, flow: Dataflow, table: TableDef, parallelism: int) -> Stream:
        connector = self.sources[table.connector]
        if table.name.lower() in self.files:
            connector = SourceConnector("file", _file, {})
            table = TableDef(
                table.name,
                table.schema,
                table.time,
                table.out_of_orderness_ms,
                {"path": str(self.files[table.name.lower()])},
                table.node,
                table.not_null,
            )
        try:
            source = connector.make(table, self)
        except SqlError as exc:
            raise src.error(exc.reason, _name_node(table)) from None
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise src.error(f"table '{table.name}': {exc}", _name_node(table)) from None
        assert table.time is not None
        checks: dict[str, Expr] = {f"NULL in column '{c}', declared NOT NULL": col(c).is_valid() for c in table.not_null}
        return flow.source(
            table.name,
            source,
            table.time,
            table.out_of_orderness_ms,
            validate=checks or None,
            parallelism=connector.partitions(table) if connector.partitions else parallelism if connector.parallel else 1,
        )

    def attach_sink(self, connector: str, name: str, stream: Stream) -> None:
        """Ends ``stream`` in the sink connector ``connector``, named ``name``."""
        if connector == "blackhole":
            stream.count(name)
        elif self.on_batch is not None:
            stream.sink(self.on_batch(name), name=name)
        else:
            stream.collect(name)

    def option(self, table: TableDef, name: str, default: str | None = None) -> str:
        value = table.options.get(name, default)
        if value is None:
            raise SqlError(f"table '{table.name}': connector '{table.connector}' needs the option '{name}'")
        return value


def int_option(table: TableDef, name: str, default: int | None, low: int | None = 1) -> int | None:
    """A table's integer option (``default`` when not given), at least ``low``."""
    text = table.options.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SqlError(f"table '{table.name}': option '{name}' must be an integer, not '{text}'") from None
    if low is not None and value < low:
        raise SqlError(f"table '{table.name}': option '{name}' must be >= {low}, not {value}")
    return value


def _name_node(table: TableDef) -> exp.Expr:
    """The table's name in its CREATE TABLE (where errors about its data point)."""
    schema = table.node.this
    return schema.this if isinstance(schema, exp.Schema) else schema


def _option_node(table: TableDef, option: str) -> exp.Expr:
    properties = table.node.args.get("properties")
    for prop in properties.expressions if properties is not None else []:
        if isinstance(prop, exp.Property) and prop.name.lower() == option:
            return prop
    return table.node


def conform(data: pa.Table, table: TableDef) -> pa.Table:
    """The declared columns of ``table``, by name (case-insensitive), cast to their declared
    types; timestamps in text are parsed (ISO 8601); the event-time column stays as it is for
    the engine to normalise (a row with an unparseable time goes to the dead letters)."""
    by_name = {name.lower(): name for name in data.column_names}
    columns = []
    fields = []
    for f in table.schema:
        actual = by_name.get(f.name.lower())
        if actual is None:
            raise SqlError(f"table '{table.name}': the data has no column '{f.name}'; it has {data.column_names}")
        column = data.column(actual)
        if f.name == table.time and not pa.types.is_timestamp(column.type):
            columns.append(column)
            fields.append(pa.field(f.name, column.type))
            continue
        try:
            if f.type == EVENT_TIME_TYPE and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                column = normalize_event_time(column.combine_chunks())[0]
            elif column.type != f.type:
                column = column.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SqlError(
                f"table '{table.name}': column '{f.name}' of type {column.type} cannot be read as {f.type}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        columns.append(column)
        fields.append(f)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _memory(table: TableDef, connectors: Connectors) -> Source:
    key = table.options.get("table", table.name)
    data = connectors.tables.get(key)
    if data is None:
        raise SqlError(
            f"table '{table.name}': no in-memory table '{key}' was given; given: {', '.join(connectors.tables) or 'none'}"
        )
    return TableSource(conform(data, table), int_option(table, "batch.size", 10_000) or 10_000)


def _file(table: TableDef, connectors: Connectors) -> Source:
    path = Path(connectors.option(table, "path"))
    if not path.is_absolute():
        path = connectors.base_dir / path
    fmt = table.options.get("format") or path.suffix.lstrip(".").lower()
    data = read_file(path, fmt, table)
    return TableSource(conform(data, table), int_option(table, "batch.size", 10_000) or 10_000)


def read_file(path: Path, fmt: str, table: TableDef | None = None) -> pa.Table:
    """Reads a CSV, Parquet, JSON-lines or Arrow IPC file. CSV columns declared as text stay
    text (a camera id of digits is still an id)."""
    if not path.exists():
        raise SqlError(f"table '{table.name if table else path}': file {path} does not exist")
    if fmt == "csv":
        import pyarrow.csv as csv

        text_columns = {}
        if table is not None:
            text_columns = {f.name: pa.string() for f in table.schema if pa.types.is_string(f.type) or f.type == EVENT_TIME_TYPE}
        return csv.read_csv(path, convert_options=csv.ConvertOptions(column_types=text_columns, strings_can_be_null=True))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if fmt in ("json", "jsonl", "ndjson"):
        import pyarrow.json as pj

        return pj.read_json(path)
    if fmt in ("arrow", "ipc", "feather"):
        import pyarrow.ipc as ipc

        with pa.memory_map(str(path)) as source:
            return ipc.open_file(source).read_all()
    raise SqlError(f"format '{fmt}' is not supported; formats: csv, parquet, json, arrow")
