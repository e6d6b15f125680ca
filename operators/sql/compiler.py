"""The entry points: ``compile_sql`` turns a SQL text into a ``SqlJob`` (a dataflow and its
outputs); running it gives a ``SqlResult`` with each output as a table."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from engine import Dataflow, InlineExecutor, JobResult, build_plan
from engine.executor import Executor
from operators.group import DELETE, OP_COLUMN
from operators.sql.connectors import Connectors
from operators.sql.dialect import Citystream
from operators.sql.errors import SourceText, SqlError
from operators.sql.planner import CompileOptions, Planner, SqlOutput


@dataclass
class SqlJob:
    """A compiled SQL text: the dataflow, and its outputs (one per INSERT or bare SELECT)."""

    flow: Dataflow
    outputs: dict[str, SqlOutput]

    def explain(self) -> str:
        """The physical plan, and which SQL statement feeds each output."""
        lines = [build_plan(self.flow).explain(), "outputs:"]
        for output in self.outputs.values():
            kind = "changelog (upsert by " + ", ".join(output.updating) + ")" if output.updating is not None else "append"
            lines.append(f"  {output.name} [{output.connector}, {kind}]: {', '.join(output.columns)}")
            if output.statement:
                first = " ".join(output.statement.split())
                lines.append(f"    from: {first[:100]}{' ...' if len(first) > 100 else ''}")
        return "\n".join(lines)

    def run(self, executor: Executor | None = None) -> SqlResult:
        """Runs the job to the end of its sources (bounded inputs) and returns its result."""
        return SqlResult(self, (executor or InlineExecutor()).run(self.flow))


@dataclass
class SqlResult:
    """The outputs of a finished SQL job, as SQL named them."""

    job: SqlJob
    result: JobResult

    def _output(self, name: str | None) -> SqlOutput:
        if name is None:
            if len(self.job.outputs) != 1:
                raise SqlError(f"the job has several outputs; name one of {sorted(self.job.outputs)}")
            name = next(iter(self.job.outputs))
        if name not in self.job.outputs:
            raise SqlError(f"no output named '{name}'; outputs are {sorted(self.job.outputs)}")
        return self.job.outputs[name]

    def changelog(self, name: str | None = None) -> pa.Table:
        """Every row the output received in order; an updating result keeps its change kind
        in column ``op`` (+I insert, +U update, -D delete)."""
        output = self._output(name)
        return as_named(output, self.result.table(output.name))

    def table(self, name: str | None = None) -> pa.Table:
        """The output's rows; for an updating result, the final row of each key (deleted keys
        left out), as a batch query over the same data would give."""
        output = self._output(name)
        table = self.result.table(output.name)
        if output.updating is not None:
            table = final_rows(table, output.updating)
        return table.select(output.physical).rename_columns(output.columns)

    def counts(self) -> dict[str, int]:
        """Rows that went to side outputs nothing read (late rows, dead letters), by output."""
        return self.result.unconsumed()


def as_named(output: SqlOutput, table: pa.Table) -> pa.Table:
    """Rows a sink received, with the columns SQL named (and ``op`` for a changelog)."""
    shown = table.select(output.physical).rename_columns(output.columns)
    if output.updating is not None:
        shown = shown.append_column("op", table.column(OP_COLUMN))
    return shown


def final_rows(changelog: pa.Table, keys: list[str]) -> pa.Table:
    """The last change of each key of an upsert changelog, without the deleted keys."""
    if changelog.num_rows == 0:
        return changelog
    numbered = changelog.append_column("__row", pa.array(range(changelog.num_rows), pa.int64()))
    if keys:
        last = numbered.group_by(keys, use_threads=False).aggregate([("__row", "max")]).column("__row_max")
    else:
        last = pa.array([changelog.num_rows - 1], pa.int64())
    rows = changelog.take(pc.take(last, pc.sort_indices(last)))  # in the order they last changed
    return rows.filter(pc.not_equal(rows.column(OP_COLUMN), DELETE))


def compile_sql(
    text: str,
    *,
    tables: dict[str, pa.Table] | None = None,
    connectors: Connectors | None = None,
    base_dir: Path | str | None = None,
    parallelism: int = 1,
    name: str = "sql",
    path: str | None = None,
) -> SqlJob:
    """Compiles SQL statements (separated by ``;``) into one job.

    Args:
        text: CREATE TABLE / CREATE VIEW / INSERT INTO / SELECT / SET statements.
        tables: in-memory tables for the ``memory`` connector, by name.
        connectors: the connectors to use (default: the built-in ones); its ``tables`` and
            ``base_dir`` are used when these arguments are not given.
        base_dir: where relative file paths start (default: the working directory).
        parallelism: default parallelism of the operators ('parallelism.default' overrides).
        name: the job's name.
        path: the file the text came from, for error messages.

    Raises:
        SqlError: with line, column and the offending text, for any mistake in the SQL.
    """
    src = SourceText(text, path)
    registry = connectors or Connectors()
    if tables:
        registry.tables.update(tables)
    if base_dir is not None:
        registry.base_dir = Path(base_dir)
    if not _without_comments(text).strip(" \t\r\n;"):
        raise SqlError("no SQL statement to run (the text is empty or only comments)")
    try:
        # sqlglot logs a warning when it falls back to a generic command: we report those ourselves.
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(text, read=Citystream) if s is not None]
    except ParseError as exc:
        first: dict[str, Any] = exc.errors[0] if exc.errors else {}
        description = str(first.get("description") or exc).split(". Line")[0]
        line, column = int(first.get("line") or 0), int(first.get("col") or 0)
        highlight = str(first.get("highlight") or "")
        if highlight and "\n" not in highlight and column >= len(highlight):
            column -= len(highlight) - 1  # sqlglot reports the token's last column; point at its first
        raise src.error_at(f"syntax error: {description}", line, column, width=max(len(highlight), 1)) from None
    except TokenError as exc:
        quote = _unclosed_quote(text)
        if quote is not None:
            raise src.error_at_offset("syntax error: a quoted string or name is not closed", quote, 1) from None
        raise SqlError(f"syntax error: {exc}") from None
    if not statements:
        raise SqlError("no SQL statement to run")
    flow = Dataflow(name, parallelism=parallelism)
    planner = Planner(src, flow, registry, CompileOptions(parallelism=parallelism))
    for statement in statements:
        if isinstance(statement, exp.Command):
            raise src.error(f"statement {statement.name.upper()} is not supported", statement)
        planner.statement(statement)
    if not planner.outputs:
        raise SqlError("the SQL defines no output: add an INSERT INTO or a SELECT")
    return SqlJob(flow, planner.outputs)


@contextlib.contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _unclosed_quote(text: str) -> int | None:
    """Where a quote that is never closed starts ('...' or "..."; doubled quotes escape)."""
    opened: tuple[str, int] | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if opened is None:
            if text.startswith("--", i):
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
                continue
            if char in "'\"":
                opened = (char, i)
        elif char == opened[0]:
            if text.startswith(char * 2, i):
                i += 1
            else:
                opened = None
        i += 1
    return opened[1] if opened else None


def _without_comments(text: str) -> str:
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return re.sub(r"/\*.*?\*/", "", "\n".join(lines), flags=re.S)


def compile_sql_file(path: Path | str, **options: Any) -> SqlJob:
    """Compiles a .sql file; relative paths in it start from its folder."""
    path = Path(path)
    options.setdefault("base_dir", path.parent)
    options.setdefault("name", path.stem)
    return compile_sql(path.read_text(), path=str(path), **options)
