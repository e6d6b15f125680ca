"""The command line runs the city job and explains its plan; bad configs are refused cleanly."""

import pyarrow as pa
from rich.console import Console

from actors.cli import main
from actors.live import LiveView
from actors.schemas import INCIDENT
from actors.topology import load_city
from engine.task import TaskMetrics


def test_explain_prints_the_city_plan(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "cameras  x3" in out and "stations  x4" in out and "districts  x3" in out and "gateways  x3" in out
    assert "hash(district) placed {'songdo': 0, 'yeongjong': 1, 'cheongna': 2}" in out


def test_a_bad_config_is_an_error_naming_the_key(tmp_path, capsys):
    config = tmp_path / "city.toml"
    config.write_text(load_city_text().replace('district = "songdo"', 'district = "sondgo"', 1))
    assert main(["run", "--config", str(config), "--duration", "1"]) == 2
    out = capsys.readouterr().out
    assert "config key 'cameras[0].district'" in out and "unknown district 'sondgo'" in out


def load_city_text():
    from actors.topology import DEFAULT_CONFIG

    return DEFAULT_CONFIG.read_text()


def test_replay_on_ray_raises_incidents_and_routes_them(capsys, ray_instance):
    assert main(["run", "--mode", "replay", "--duration", "100", "--seed", "7", "--no-view", "--linger-ms", "2"]) == 0
    out = capsys.readouterr().out
    assert "ray executor" in out
    total = int(out.split(" incidents: ")[0].split()[-1])
    assert total > 0
    assert "refused_detections: 0" in out and "late_detections: 0" in out
    assert "districts[2]" in out and "gateways[2]" in out


def test_a_live_run_stops_after_its_duration(capsys, ray_instance):
    assert main(["run", "--mode", "live", "--duration", "4", "--no-view"]) == 0
    out = capsys.readouterr().out
    detections = int(out.split(" detections and ")[0].split()[-1].replace(",", ""))
    assert detections > 0


def test_the_live_view_shows_rates_lags_and_incidents():
    city = load_city()
    view = LiveView(city)
    metrics = {"cameras[0]": TaskMetrics(rows_in=100), "districts[0]": TaskMetrics(rows_in=50, watermark=1)}
    view.update(metrics, now=1.0)
    metrics = {"cameras[0]": TaskMetrics(rows_in=300), "districts[0]": TaskMetrics(rows_in=150, watermark=1)}
    view.update(metrics, now=2.0)
    row = {name: None for name in INCIDENT.names} | {
        "incident_id": "crowd:songdo:cam:0", "district": "songdo", "kind": "crowd", "severity": 3, "evidence": "20 people",
        "gateway": "incheon-yeonsu-police", "cameras": ["cam"],
    }
    incidents = pa.Table.from_pylist([row], schema=INCIDENT)
    console = Console(record=True, width=160)
    console.print(view.render(metrics, incidents, 12.0))
    text = console.export_text()
    assert "cameras" in text and "200" in text  # 200 rows/s
    assert "songdo" in text and "crowd" in text and "20 people" in text
