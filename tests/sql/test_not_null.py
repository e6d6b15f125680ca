"""A column declared NOT NULL: rows with NULL there go to the source's dead letters (counted,
with the reason), never into the query."""

import pyarrow as pa

from operators.sql import compile_sql

SQL = """
CREATE TABLE readings (ts TIMESTAMP(3), station STRING NOT NULL, pm10 DOUBLE,
                       WATERMARK FOR ts AS ts) WITH ('connector' = 'memory');
SELECT station, pm10 FROM readings;
"""


def test_rows_with_null_in_a_not_null_column_are_dead_letters():
    data = pa.table({"ts": [1000, 2000, 3000], "station": ["SD-1", None, "YJ-1"], "pm10": [40.0, 50.0, None]})
    job = compile_sql(SQL, tables={"readings": data})
    result = job.run()
    assert result.table().to_pylist() == [{"station": "SD-1", "pm10": 40.0}, {"station": "YJ-1", "pm10": None}]
    assert result.counts() == {"readings.dead_letter": 1}
