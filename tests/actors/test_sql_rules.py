"""The city's rules shipped as SQL (actors/config/rules/*.sql) find the windows the Python
rules of the district actors raise incidents for, with the same severities."""

from pathlib import Path

import pyarrow as pa
import pytest

from actors.city import city_flow
from actors.city_sql import city_connectors
from actors.cli import gateway_incidents
from actors.topology import DEFAULT_CONFIG, load_city
from engine import InlineExecutor
from operators.sql import compile_sql_file

RULES = Path(DEFAULT_CONFIG).parent / "rules"
DURATION_S, SEED = 600.0, 7


@pytest.fixture(scope="module")
def city():
    # Frames of a simulated second rather than 200 ms: the same rows and incidents, a quarter
    # of the time (a replay's cost is mostly per frame).
    return load_city(DEFAULT_CONFIG, ["simulation.batch_ms=1000"])


@pytest.fixture(scope="module")
def python_incidents(city):
    result = InlineExecutor().run(city_flow(city, mode="replay", duration_s=DURATION_S, seed=SEED, serve=False, screen=False))
    return gateway_incidents(result.outputs)


def sql_rows(city, rule):
    job = compile_sql_file(RULES / f"{rule}.sql", connectors=city_connectors(city, duration_s=DURATION_S, seed=SEED))
    return job.run().table()


def ms(value):
    return int(pa.scalar(value, pa.timestamp("ms", "UTC")).cast(pa.int64()).as_py())


@pytest.mark.parametrize("rule", ["fire", "crowd"])
def test_camera_rules_match_the_python_rules(city, python_incidents, rule):
    incidents = [
        row
        for row in python_incidents.to_pylist()
        if row["kind"] == rule and len(row["cameras"]) == 1 and not row["evidence"].startswith("smoke from a fire in")
    ]
    assert incidents, f"the replay raised no {rule} incident to compare with"
    windows = {(r["district"], r["camera"], ms(r["window_start"])): r["severity"] for r in sql_rows(city, rule).to_pylist()}
    for incident in incidents:
        key = (incident["district"], incident["cameras"][0], ms(incident["window_start"]))
        assert key in windows, f"SQL {rule} rule misses {key}"
        assert windows[key] == incident["severity"], key
    # A window the Python rule did not raise repeats an episode it raised: it starts less than
    # repeat_after_s after the end of the window that raised it.
    raised = {}
    for incident in incidents:
        key = (incident["district"], incident["cameras"][0])
        raised.setdefault(key, []).append((ms(incident["window_start"]), ms(incident["window_end"])))
    for district, camera, start in windows:
        episodes = raised.get((district, camera), [])
        if all(start != s for s, _ in episodes):
            assert any(end <= start < end + city.rules.repeat_after_s * 1000 for _, end in episodes), (district, camera, start)


def test_yellow_dust_rule_matches_the_python_rule(city, python_incidents):
    dust = [r for r in python_incidents.to_pylist() if r["kind"] == "yellow_dust"]
    expected = {(r["district"], ms(r["window_start"])): r["severity"] for r in dust}
    got = {(r["district"], ms(r["window_start"])): r["severity"] for r in sql_rows(city, "yellow_dust").to_pylist()}
    assert expected, "the replay raised no yellow-dust incident to compare with"
    for key, severity in expected.items():
        assert got.get(key) == severity, key
    repeat_ms = city.rules.repeat_after_s * 1000
    for district, start in set(got) - set(expected):
        ends = [ms(r["window_end"]) for r in dust if r["district"] == district]
        assert any(end <= start < end + repeat_ms for end in ends), (district, start)
