"""The SQL corpus (after Arroyo's sql-testing crate): every ``queries/NAME.sql`` runs on the
fixtures in ``data/`` and must give the rows of its golden file ``NAME.expected.csv`` and of
its batch twin ``NAME.duckdb.sql`` run by DuckDB over the same CSV files; every
``queries/error_NAME.sql`` must fail to compile with a ``SqlError`` whose message holds each
``-- error: <text>`` line of its header and whose line and column point at the text of its
``-- at: <text>`` line. A few queries also run on Ray, where they must give the same rows.

``CITYSTREAM_UPDATE_GOLDEN=1`` rewrites a golden file, only once the streaming result has been
checked equal to DuckDB's. A job with several outputs has one golden file per output
(``NAME.OUTPUT.expected.csv``) and its DuckDB file one section per output, each after a line
``-- output: OUTPUT``.
"""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import sqlglot
from sqlglot import exp

from operators.sql import SqlError, SqlResult, compile_sql_file
from operators.sql.dialect import Citystream

QUERIES = Path(__file__).resolve().parent / "queries"
UPDATE_GOLDEN = os.environ.get("CITYSTREAM_UPDATE_GOLDEN") == "1"
REL_TOL = 1e-9

# Queries the compiler gets wrong today: query stem -> the symptom (strict xfail, so that a fix
# shows up as XPASS and the entry gets removed).
KNOWN_FAILURES: dict[str, str] = {}

# A handful of queries also run on Ray and must give the inline executor's rows.
ON_RAY = ("tumble_tvf", "temporal_join", "interval_join", "group_by_having", "window_join", "regular_join", "session_tvf")


def _queries() -> list[Path]:
    return sorted(p for p in QUERIES.glob("*.sql") if not p.name.startswith("error_") and not p.name.endswith(".duckdb.sql"))


def _errors() -> list[Path]:
    return sorted(QUERIES.glob("error_*.sql"))


def _params(paths: list[Path]) -> list[Any]:
    params = []
    for path in paths:
        reason = KNOWN_FAILURES.get(path.stem)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


# ---- values -----------------------------------------------------------------------------------


class Timestamp(int):
    """A timestamp as epoch milliseconds, kept apart from plain integers when compared."""

    def __repr__(self) -> str:
        return datetime.fromtimestamp(self / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _value(value: Any) -> Any:
    """A cell in the form both sides are compared in: timestamps as epoch ms (naive ones are
    UTC), decimals as floats."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return Timestamp(round(value.timestamp() * 1000))
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    key = []
    for value in row:
        if value is None:
            key.append((0, 0))
        elif isinstance(value, bool):
            key.append((1, int(value)))
        elif isinstance(value, (int, float)):
            # Rounded, so that values equal within the tolerance sort alike.
            key.append((2, float(f"{value:.9g}") if not isinstance(value, Timestamp) else int(value)))
        else:
            key.append((3, str(value)))
    return tuple(key)


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted((tuple(_value(v) for v in row.values()) for row in table.to_pylist()), key=_sort_key)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Timestamp) or isinstance(b, Timestamp):
        return isinstance(a, Timestamp) and isinstance(b, Timestamp) and int(a) == int(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0) or a == b
    return type(a) is type(b) and a == b


def _bucket(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The part of a row compared exactly (numbers, compared within the tolerance, left out)."""
    return tuple(
        "number" if isinstance(v, (int, float)) and not isinstance(v, (bool, Timestamp)) else (type(v).__name__, v) for v in row
    )


def assert_same_rows(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]], what: str) -> None:
    """Equal as multisets of rows (floats within REL_TOL, timestamps as epoch ms)."""
    waiting: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for row in expected:
        waiting.setdefault(_bucket(row), []).append(row)
    extra = []
    for row in actual:
        candidates = waiting.get(_bucket(row), [])
        match = next((i for i, other in enumerate(candidates) if len(other) == len(row) and all(map(_same, row, other))), None)
        if match is None:
            extra.append(row)
        else:
            candidates.pop(match)
    missing = sorted((row for rows in waiting.values() for row in rows), key=_sort_key)
    if not extra and not missing:
        return
    shown = "\n".join([f"  only in the streaming result ({len(extra)}):", *[f"    {r}" for r in extra[:20]]])
    shown += "\n" + "\n".join([f"  only in {what} ({len(missing)}):", *[f"    {r}" for r in missing[:20]]])
    pytest.fail(f"streaming result ({len(actual)} rows) != {what} ({len(expected)} rows)\n{shown}", pytrace=False)


# ---- DuckDB ----------------------------------------------------------------------------------


def _duckdb_type(kind: exp.DataType) -> str:
    name = kind.this.name if hasattr(kind.this, "name") else str(kind.this)
    if name.startswith("TIMESTAMP"):
        return "TIMESTAMP"  # naive, read as UTC like the streaming side
    if name in ("STRING", "TEXT", "CHAR", "NCHAR", "NVARCHAR", "VARCHAR"):
        return "VARCHAR"
    return kind.sql(dialect="duckdb")


def duckdb_connection(query: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a table per file-connector table that the streaming query
    declares, of the same name, columns and types, read from the same file."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for statement in sqlglot.parse(query.read_text(), read=Citystream):
        if not isinstance(statement, exp.Create) or (statement.args.get("kind") or "").upper() != "TABLE":
            continue
        properties = statement.args.get("properties")
        options = {p.name.lower(): p.args["value"].name for p in (properties.expressions if properties else [])}
        if options.get("connector") != "file":
            continue
        path = (query.parent / options["path"]).resolve()
        fmt = options.get("format") or path.suffix.lstrip(".")
        assert fmt == "csv", f"{query.name}: the oracle reads CSV fixtures only, not {fmt}"
        columns = [c for c in statement.this.expressions if isinstance(c, exp.ColumnDef)]
        select = ", ".join(f'CAST("{c.name}" AS {_duckdb_type(c.args["kind"])}) AS "{c.name}"' for c in columns)
        name = statement.this.this.name
        con.execute(f"CREATE TABLE \"{name}\" AS SELECT {select} FROM read_csv('{path}', header = true, all_varchar = true)")
    return con


def duckdb_sections(path: Path) -> dict[str | None, str]:
    """The DuckDB queries of a job: the whole file, or one section per ``-- output: NAME``."""
    sections: dict[str | None, list[str]] = {None: []}
    current: str | None = None
    for line in path.read_text().splitlines():
        match = re.match(r"--\s*output:\s*(\S+)\s*$", line)
        if match:
            current = match.group(1)
            sections[current] = []
        else:
            sections[current].append(line)
    texts = {name: "\n".join(lines).strip().rstrip(";") for name, lines in sections.items()}
    if len(texts) > 1:
        assert not re.sub(r"--[^\n]*", "", texts.pop(None)).strip(), f"{path.name}: text before the first '-- output:'"
    return texts


def _arrow_kind(data_type: pa.DataType) -> str:
    """The family of a column type; within one, the widths may differ (INT and BIGINT, DOUBLE
    and DECIMAL) as long as the values are equal."""
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "real"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    return str(data_type)


def _duckdb_kind(name: str) -> str:
    name = name.upper()
    if name == "BOOLEAN":
        return "boolean"
    if name in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"):
        return "integer"
    if name in ("FLOAT", "DOUBLE") or name.startswith("DECIMAL"):
        return "real"
    if name == "VARCHAR":
        return "string"
    if name.startswith("TIMESTAMP"):
        return "timestamp"
    return name.lower()


def no_oracle(path: Path) -> str | None:
    match = re.search(r"^--\s*no oracle:\s*(.+)$", path.read_text(), re.MULTILINE)
    return match.group(1) if match else None


# ---- golden files --------------------------------------------------------------------------------


def golden_path(query: Path, output: str, outputs: int) -> Path:
    return query.with_name(f"{query.stem}.expected.csv" if outputs == 1 else f"{query.stem}.{output}.expected.csv")


def write_golden(path: Path, table: pa.Table) -> None:
    """The rows in a stable order (the comparison's), so that a change shows as a small diff."""
    keys = [_sort_key(tuple(_value(v) for v in row.values())) for row in table.to_pylist()]
    order = sorted(range(table.num_rows), key=keys.__getitem__)
    pacsv.write_csv(table.take(pa.array(order, pa.int64())), path)


def read_golden(path: Path, like: pa.Table) -> pa.Table:
    """The golden rows, each column read as the type of the streaming result's column (an
    unquoted empty cell is NULL, a quoted one an empty string)."""
    types = {f.name: f.type for f in like.schema if not pa.types.is_null(f.type)}
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False)
    return pacsv.read_csv(path, convert_options=options)


# ---- the tests ---------------------------------------------------------------------------------


def _outputs(result: SqlResult) -> dict[str, pa.Table]:
    return {name: result.table(name) for name in result.job.outputs}


@pytest.mark.parametrize("query", _params(_queries()))
def test_query(query: Path) -> None:
    """Streaming result == golden file == DuckDB's batch result, for every output of the job."""
    first_line = next(iter(query.read_text().splitlines()), "")
    assert first_line.startswith("-- ") and len(first_line) > 3, f"{query.name}: the first line says what the query covers"
    job = compile_sql_file(query)
    result = job.run()
    outputs = _outputs(result)
    late = {label: rows for label, rows in result.counts().items() if rows}
    assert not late, f"rows went to side outputs (late or dead letters): {late}; the fixtures are meant to have none"

    oracle = query.with_name(f"{query.stem}.duckdb.sql")
    reason = no_oracle(query)
    if reason is None:
        assert oracle.exists(), f"{query.name} has no {oracle.name} (or say '-- no oracle: why')"
        sections = duckdb_sections(oracle)
        if len(outputs) == 1 and None in sections:
            sections = {next(iter(outputs)): sections[None]}
        assert set(sections) == set(outputs), (
            f"{oracle.name} has sections {sorted(map(str, sections))}, the job {sorted(outputs)}"
        )
        con = duckdb_connection(query)
        for name, table in outputs.items():
            relation = con.sql(sections[name])
            assert [c.lower() for c in table.column_names] == [c.lower() for c in relation.columns], (
                f"output '{name}': columns {table.column_names}, DuckDB's {relation.columns}"
            )
            kinds = [_arrow_kind(t) for t in table.schema.types]
            duck_kinds = [_duckdb_kind(str(t)) for t in relation.types]
            assert all(a in (b, "null") for a, b in zip(kinds, duck_kinds, strict=True)), (
                f"output '{name}': column kinds {kinds}, DuckDB's {duck_kinds} ({[str(t) for t in relation.types]})"
            )
            expected = sorted((tuple(_value(v) for v in row) for row in relation.fetchall()), key=_sort_key)
            assert expected, f"{oracle.name} ({name}): DuckDB gives no row; a query should be tested on rows"
            assert_same_rows(_rows(table), expected, f"DuckDB ({oracle.name}, output {name})")

    for name, table in outputs.items():
        golden = golden_path(query, name, len(outputs))
        if UPDATE_GOLDEN:
            write_golden(golden, table)
            continue
        if not golden.exists() and query.stem in KNOWN_FAILURES:
            continue  # equal to DuckDB's now: XPASS says to drop the entry and write the golden file
        assert golden.exists(), f"no golden file {golden.name}: run with CITYSTREAM_UPDATE_GOLDEN=1"
        expected_table = read_golden(golden, table)
        assert [c.lower() for c in expected_table.column_names] == [c.lower() for c in table.column_names], (
            f"output '{name}': columns {table.column_names}, the golden file's {expected_table.column_names}"
        )
        assert_same_rows(_rows(table), _rows(expected_table), f"the golden file {golden.name}")


def _error_spec(path: Path) -> tuple[list[str], str]:
    lines = path.read_text().splitlines()
    assert lines and lines[0].startswith("-- error:"), f"{path.name}: the first line is '-- error: <message substring>'"
    expected = [line.split(":", 1)[1].strip() for line in lines if line.startswith("-- error:")]
    at = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("-- at:")), None)
    assert at, f"{path.name}: a line '-- at: <the offending text>' says where the error must point"
    return expected, at


@pytest.mark.parametrize("query", _params(_errors()))
def test_error(query: Path) -> None:
    """Compiling fails with a SqlError that says what is wrong and points at it: line and
    column of the offending text (``-- at:``), and the source line with a caret under it."""
    expected, at = _error_spec(query)
    with pytest.raises(SqlError) as caught:
        compile_sql_file(query)
    error = caught.value
    message = str(error)
    for part in expected:
        assert part in message, f"expected {part!r} in the message:\n{message}"
    assert error.line > 0 and error.column > 0, f"no position in:\n{message}"
    assert f"line {error.line}, column {error.column}" in message
    lines = query.read_text().splitlines()
    assert error.line <= len(lines), f"line {error.line} is past the end of the file"
    pointed = lines[error.line - 1][error.column - 1 :]
    assert pointed.startswith(at), f"line {error.line}, column {error.column} points at {pointed!r}, not {at!r}"
    assert at in error.snippet, f"the snippet does not show {at!r}:\n{error.snippet}"
    assert lines[error.line - 1] in error.snippet and "^" in error.snippet, f"the snippet:\n{error.snippet}"


@pytest.mark.parametrize("executor", ["ray"], indirect=True)
@pytest.mark.parametrize("query", _params([QUERIES / f"{name}.sql" for name in ON_RAY]))
def test_query_on_ray(query: Path, executor: Any) -> None:
    """The same rows on Ray as on the inline executor."""
    inline = _outputs(compile_sql_file(query).run())
    on_ray = _outputs(compile_sql_file(query).run(executor))
    assert set(on_ray) == set(inline)
    for name, table in inline.items():
        assert on_ray[name].column_names == table.column_names
        assert_same_rows(_rows(on_ray[name]), _rows(table), f"the inline executor's result ({name})")
