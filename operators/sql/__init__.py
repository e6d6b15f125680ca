"""Streaming SQL: statements in the Flink SQL dialect compiled to the same dataflow and
operators as the Python API, run on either executor.

Example:
    >>> import pyarrow as pa
    >>> from operators.sql import compile_sql
    >>> readings = pa.table(
    ...     {"ts": [1000, 2000, 11000], "district": ["songdo", "songdo", "cheongna"], "pm10": [40.0, 160.0, 90.0]}
    ... )
    >>> job = compile_sql('''
    ...     CREATE TABLE weather (ts TIMESTAMP(3), district STRING, pm10 DOUBLE,
    ...                           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'memory');
    ...     SELECT district, MAX(pm10) AS worst
    ...     FROM TABLE(TUMBLE(TABLE weather, DESCRIPTOR(ts), INTERVAL '10' SECOND))
    ...     GROUP BY window_start, window_end, district;
    ... ''', tables={"weather": readings})
    >>> job.run().table().to_pylist()
    [{'district': 'songdo', 'worst': 160.0}, {'district': 'cheongna', 'worst': 90.0}]
"""

from operators.sql.compiler import SqlJob, SqlResult, compile_sql, compile_sql_file
from operators.sql.connectors import Connectors, SourceConnector, TableDef
from operators.sql.errors import SqlError

__all__ = ["compile_sql", "compile_sql_file", "SqlJob", "SqlResult", "SqlError", "Connectors", "SourceConnector", "TableDef"]
