"""Stateless operators: filter, project (with computed columns), map_batches, validate, union."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from engine.expr import Expr, as_array, failed_checks
from engine.operator import DEAD_LETTER, REASON_COLUMN, Collector, StatelessOperator


class Filter(StatelessOperator):
    """Keeps the rows where the predicate is true (null counts as false)."""

    def __init__(self, predicate: Expr) -> None:
        self.predicate = predicate

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        mask = self.predicate.evaluate(batch)
        if isinstance(mask, pa.Scalar):
            if mask.as_py():
                out.emit(batch)
            return
        out.emit(batch.filter(mask))


class Project(StatelessOperator):
    """Builds each output column from an expression (a plain column is passed zero-copy)."""

    def __init__(self, columns: dict[str, Expr], schema: pa.Schema) -> None:
        self.columns = list(columns.items())
        self.schema = schema

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        arrays = []
        for (_, expr), field in zip(self.columns, self.schema, strict=True):
            value = as_array(expr.evaluate(batch), batch.num_rows)
            arrays.append(value if value.type == field.type else value.cast(field.type))
        out.emit(pa.RecordBatch.from_arrays(arrays, schema=self.schema))


class MapBatches(StatelessOperator):
    """Applies a user function to each batch; its output must have the declared schema."""

    def __init__(self, fn: Callable[[pa.RecordBatch], pa.RecordBatch], schema: pa.Schema, name: str) -> None:
        self.fn = fn
        self.schema = schema
        self.name = name

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        result = self.fn(batch)
        if isinstance(result, pa.Table):
            result = result.combine_chunks().to_batches()[0] if result.num_rows else None
        if result is None:
            return
        if not result.schema.equals(self.schema):
            raise TypeError(f"map_batches '{self.name}' returned schema {result.schema} but declared {self.schema}")
        out.emit(result)


class Validate(StatelessOperator):
    """Sends rows that fail a named check to ``dead_letter``, with the check's name as reason.

    A row failing several checks is reported with the first one that fails.
    """

    def __init__(self, checks: dict[str, Expr]) -> None:
        self.checks = list(checks.items())

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        refused, reasons = failed_checks(batch, self.checks)
        if refused is None or reasons is None or not pc.any(refused).as_py():
            out.emit(batch)
            return
        out.emit_to(DEAD_LETTER, batch.filter(refused).append_column(REASON_COLUMN, reasons.filter(refused)))
        out.emit(batch.filter(pc.invert(refused)))


class Union(StatelessOperator):
    """Merges its inputs, which have the same schema, into one stream."""

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        out.emit(batch)
