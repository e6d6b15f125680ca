"""``citystream sql`` runs a SQL file against the city's streams or data files and prints the
rows as they come; ``citystream explain FILE.sql`` prints its plan; a SQL mistake is a message
with its position and exit code 2, never a traceback."""

import pytest

from actors.cli import main

QUERY = """
CREATE TABLE weather (ts TIMESTAMP(3), district STRING, pm10 DOUBLE,
                      WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'city', 'stream' = 'weather');
SELECT district, COUNT(*) AS readings, MAX(pm10) AS worst
FROM TABLE(TUMBLE(TABLE weather, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, district;
"""


@pytest.fixture
def query(tmp_path):
    path = tmp_path / "q.sql"
    path.write_text(QUERY)
    return path


def test_sql_runs_against_the_city_and_prints_rows(query, capsys):
    assert main(["sql", str(query), "--duration", "120"]) == 0
    out = capsys.readouterr().out
    assert "[result] district | readings | worst" in out
    rows = [line for line in out.splitlines() if line.startswith("[result]")][1:]
    # 4 stations read every 10 s: two complete minutes per district (songdo has two stations).
    assert len(rows) == 6
    assert {row.split(" | ")[1] for row in rows} == {"6", "12"}
    assert "-- result: 6 rows" in out


def test_sql_reads_a_table_from_a_data_file(query, tmp_path, capsys):
    data = tmp_path / "readings.csv"
    data.write_text(
        "ts,district,pm10\n2026-05-01T00:00:01Z,songdo,80\n2026-05-01T00:00:30Z,songdo,120\n2026-05-01T00:01:10Z,cheongna,60\n"
    )
    assert main(["sql", str(query), "--data", f"weather={data}"]) == 0
    out = capsys.readouterr().out
    assert "[result] songdo | 2 | 120" in out and "[result] cheongna | 1 | 60" in out


def test_explain_prints_the_plan_of_a_sql_file(query, capsys):
    assert main(["explain", str(query)]) == 0
    out = capsys.readouterr().out
    assert "weather  x4" in out and "hash(district)" in out and "result [collect, append]: district, readings, worst" in out


def test_a_sql_mistake_is_reported_with_its_position(tmp_path, capsys):
    path = tmp_path / "bad.sql"
    path.write_text(QUERY.replace("MAX(pm10)", "MAX(pm100)"))
    assert main(["sql", str(path)]) == 2
    err = capsys.readouterr().err
    assert "SQL error at line 4, column" in err and "unknown column 'pm100'" in err and "columns in scope" in err
    assert "Traceback" not in err
