"""The ``nexmark`` SQL source connector: a ``CREATE TABLE ... WITH ('connector' = 'nexmark',
'kind' = 'bid')`` reads the generator's bids (or persons, or auctions).

Example:
    >>> from operators.sql import compile_sql
    >>> job = compile_sql('''
    ...     CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
    ...                       dateTime TIMESTAMP(3), extra VARCHAR, WATERMARK FOR dateTime AS dateTime)
    ...         WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events' = '1000');
    ...     SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
    ... ''', connectors=nexmark_connectors())
    >>> job.run().table().column_names
    ['auction', 'price']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.nexmark.generator import KINDS, SCHEMAS, NexmarkConfig, NexmarkKind, NexmarkSource
from engine.errors import OptionError
from engine.sources import EndOfInput, Source
from operators.sql import Connectors, SourceConnector, SqlError, TableDef
from operators.sql.connectors import int_option

CONNECTOR = "nexmark"

# Connector option -> (NexmarkConfig field, smallest value allowed; None: any integer).
_CONFIG_OPTIONS: dict[str, tuple[str, int | None]] = {
    "events": ("events", 0),
    "events.per.second": ("events_per_second", 1),
    "seed": ("seed", None),
    "out.of.order.group": ("out_of_order_group_size", 1),
    "batch.size": ("batch_size", 1),
}
OPTIONS = {
    "kind": "which events the table holds: person, auction or bid",
    "events": "total number of events of all kinds (the table gets its kind's share of them)",
    "events.per.second": "simulated event rate that spaces the timestamps (default 10000)",
    "seed": "seed of the random values (default 0)",
    "out.of.order.group": "events are shuffled within groups of this many (default 1: in order)",
    "batch.size": "event ids per generated block (default: enough for about 10000 rows of the table's kind)",
}


def nexmark_connectors(config: NexmarkConfig | None = None) -> Connectors:
    """The built-in connectors plus ``nexmark``, generating events with ``config`` (whose
    fields the table's options override).

    Args:
        config: The generator's configuration (default: ``NexmarkConfig()``, 10 million events).
    """
    connectors = Connectors()
    register_nexmark(connectors, config)
    return connectors


def register_nexmark(connectors: Connectors, config: NexmarkConfig | None = None) -> None:
    """Registers the ``nexmark`` source connector on ``connectors``."""
    connectors.register(SourceConnector(CONNECTOR, _NexmarkTables(config or NexmarkConfig()), OPTIONS, ("kind",), parallel=True))


def sized_for_kind(config: NexmarkConfig, kind: NexmarkKind) -> NexmarkConfig:
    """``config`` with blocks of event ids that hold about ``batch_size`` rows of ``kind``, as
    other sources give: a block of 10,000 event ids holds only 200 persons, and per-batch
    costs would dominate the queries over persons and auctions."""
    share = {"person": config.person_proportion, "auction": config.auction_proportion, "bid": config.bid_proportion}[kind]
    return replace(config, batch_size=-(-config.batch_size * config.total_proportion // share))


def table_config(table: TableDef, config: NexmarkConfig) -> NexmarkConfig:
    """``config`` with the table's options applied."""
    changes: dict[str, int] = {}
    for option, (field, low) in _CONFIG_OPTIONS.items():
        value = int_option(table, option, None, low)
        if value is not None:
            changes[field] = value
    try:
        return replace(config, **changes)  # type: ignore[arg-type]
    except OptionError as exc:
        raise SqlError(f"table '{table.name}': {exc}") from None


@dataclass(frozen=True)
class _NexmarkTables:
    """Makes the source of a table (a class, so that the connector carries its configuration)."""

    config: NexmarkConfig

    def __call__(self, table: TableDef, connectors: Connectors) -> Source:
        kind = table.options.get("kind", "")
        if kind not in KINDS:
            raise SqlError(f"table '{table.name}': option 'kind' = '{kind}' is not allowed; kinds: {', '.join(KINDS)}")
        config = table_config(table, self.config)
        if "batch.size" not in table.options:
            config = sized_for_kind(config, kind)
        if table.out_of_orderness_ms < config.max_out_of_orderness_ms:
            raise SqlError(
                f"table '{table.name}': the watermark allows {table.out_of_orderness_ms} ms of out-of-orderness, but with "
                f"'out.of.order.group' = {config.out_of_order_group_size} the generator is up to "
                f"{config.max_out_of_orderness_ms} ms out of order, and rows would be dropped as late",
                hint=f"declare WATERMARK FOR {table.time} AS {table.time} - INTERVAL '{config.max_out_of_orderness_ms}' "
                "MILLISECOND or more",
            )
        source = NexmarkSource(kind, config)
        if table.schema.equals(SCHEMAS[kind]):
            return source
        return _DeclaredColumns(source, _columns(table, kind))


def _columns(table: TableDef, kind: NexmarkKind) -> list[tuple[str, pa.Field]]:
    """(generator column, declared field) of each declared column, in the declared order."""
    generated = {f.name.lower(): f for f in SCHEMAS[kind]}
    columns = []
    for declared in table.schema:
        actual = generated.get(declared.name.lower())
        if actual is None:
            raise SqlError(
                f"table '{table.name}': a nexmark {kind} has no column '{declared.name}'; it has {', '.join(SCHEMAS[kind].names)}"
            )
        if actual.type != declared.type and not _castable(actual.type, declared.type):
            raise SqlError(
                f"table '{table.name}': column '{declared.name}' is {actual.type} in a nexmark {kind}, "
                f"which cannot be read as {declared.type}"
            )
        columns.append((actual.name, declared))
    return columns


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    numeric = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    return (numeric(source) and numeric(target)) or pa.types.is_string(target)


class _DeclaredColumns(Source):
    """The generator's batches with the columns a table declares (a subset, another order,
    other names' case, wider types)."""

    def __init__(self, source: NexmarkSource, columns: list[tuple[str, pa.Field]]) -> None:
        self._source = source
        self._columns = columns
        self.schema = pa.schema([declared for _, declared in columns])
        self.kind, self.config = source.kind, source.config
        self.replayable = source.replayable  # the generator's place is the table's: only columns change

    def __copy__(self) -> _DeclaredColumns:
        # Each task copies its source (engine.task) and opens its copy with its partition: the
        # generator inside must be copied too, or the tasks would all read the last one opened.
        twin = object.__new__(_DeclaredColumns)
        twin.__dict__.update(self.__dict__)
        twin._source = copy.copy(self._source)
        return twin

    def open(self, partition: int, partitions: int) -> None:
        self._source.open(partition, partitions)

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        batch = self._source.poll()
        if not isinstance(batch, pa.RecordBatch):
            return batch
        arrays = []
        for name, declared in self._columns:
            array = batch.column(name)
            arrays.append(array if array.type == declared.type else pc.cast(array, declared.type))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def snapshot(self) -> Any:
        return self._source.snapshot()

    def restore(self, state: Any) -> None:
        self._source.restore(state)

    def on_commit(self, checkpoint_id: int, state: Any) -> None:
        self._source.on_commit(checkpoint_id, state)

    def close(self) -> None:
        self._source.close()
