"""The load-testing harness: its open-loop schedule, its sources' promises, the load city, and
one short run through the real pipeline on Ray (gateways, console processes) with the checks
and the result files."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from actors.city import city_flow
from actors.cli import main
from benchmarks.loadtest.harness import LoadTest, Options, figures, histogram, write_results
from benchmarks.loadtest.workload import (
    INTRUDER_TRACKS,
    Scale,
    Schedule,
    ScheduledDetections,
    ScheduledReadings,
    consoles,
    load_city,
)
from engine import InlineExecutor
from engine.errors import OptionError


def test_schedule_counts_and_due_times_agree():
    schedule = Schedule(((1.5, 3_000.0), (0.5, 10_000.0), (1.0, 700.0)), intrusions_per_s=4.0)
    assert schedule.total_rows() == 4_500 + 5_000 + 700
    due = schedule.due_ms(np.arange(schedule.total_rows(), dtype=np.float64))
    assert np.all(np.diff(due) > 0)
    for t in np.random.default_rng(3).uniform(0, 3_000, 200):
        # Exactly the rows due at or before t are counted as due then.
        assert schedule.rows_due(t) == int(np.sum(due <= t))
    assert schedule.rows_due(10_000) == schedule.total_rows()  # nothing after the end
    assert [schedule.rate_at(t) for t in (0.0, 1_499.0, 1_500.0, 2_999.0, 3_000.0)] == [3_000.0, 3_000.0, 10_000.0, 700.0, 0.0]
    assert schedule.total_intrusions() == 12
    assert schedule.intrusions_due(124.0) == 0 and schedule.intrusions_due(125.0) == 1  # k due at (k + 0.5) / rate


def test_schedule_refuses_bad_steps():
    with pytest.raises(OptionError, match="steps"):
        Schedule(((1.0, 0.0),))
    with pytest.raises(OptionError, match="steps"):
        Schedule(())
    with pytest.raises(OptionError, match="camera_tasks"):
        Scale(cameras=3, camera_tasks=4)
    with pytest.raises(OptionError, match="gateways"):
        Scale(districts=2, gateways=3)


def test_consoles_are_scoped_by_district():
    plans = consoles(Scale(districts=3, gateways=1, consoles=3))
    assert [p.districts for p in plans] == [("songdo", "yeongjong", "cheongna"), ("songdo",), ("yeongjong",)]
    two = consoles(Scale(districts=3, gateways=2, consoles=4))
    assert [(p.gateway, p.districts) for p in two] == [
        ("loadtest-gateway-0", ("songdo", "cheongna")),
        ("loadtest-gateway-1", ("yeongjong",)),
        ("loadtest-gateway-0", ("songdo",)),
        ("loadtest-gateway-1", ("yeongjong",)),
    ]


def test_open_loop_rows_keep_their_scheduled_times_after_a_stall(tmp_path):
    """A source polled late emits what fell due meanwhile, stamped with the due times, in
    batches of at most max_batch_rows; nothing it emits later is stamped at or before what it
    promised; partitions share the schedule without overlap."""
    city = load_city(Scale(cameras=6, stations=3, camera_tasks=2), str(tmp_path))
    schedule = Schedule(((0.4, 10_000.0),), intrusions_per_s=10.0)
    start = int(time.time() * 1000) - 300  # the schedule began 300 ms ago: a stall
    emitted: list[pa.RecordBatch] = []
    for partition in (0, 1):
        source = ScheduledDetections(city, schedule, clock=start, max_batch_rows=500, end_after=True)
        source.open(partition, 2)
        first = source.poll()
        assert isinstance(first, pa.RecordBatch)
        # Capped: the backlog comes in batches of 500 (with the intrusions due among them).
        assert pc.sum(pc.less(first["track_id"], INTRUDER_TRACKS)).as_py() == 500
        assert pc.min(first["ts"]).value == start  # stamped when due, not when emitted
        assert pc.min(first["ingest_time"]).value >= start + 300
        promised = -1
        batches = [first]
        while True:
            batch = source.poll()
            if batch is not None and not isinstance(batch, pa.RecordBatch):
                break  # the end of the schedule
            if batch is not None:
                assert pc.min(batch["ts"]).value > promised, "a row came at or before the promised progress"
                batches.append(batch)
            progress = source.progress()
            if progress is not None:
                assert progress < time.time() * 1000
                promised = max(promised, progress)
            time.sleep(0.0005)
        emitted += batches
    table = pa.Table.from_batches(emitted)
    intruders = table.filter(pc.greater_equal(table["track_id"], INTRUDER_TRACKS))
    assert table.num_rows == schedule.total_rows() + schedule.total_intrusions()
    assert intruders.num_rows == schedule.total_intrusions() == 4
    assert set(intruders["zone_kind"].to_pylist()) == {"restricted"} and set(intruders["label"].to_pylist()) == {"person"}
    assert len(set(intruders["track_id"].to_pylist())) == 4
    background = table.filter(pc.less(table["track_id"], INTRUDER_TRACKS))
    due = schedule.due_ms(np.arange(schedule.total_rows(), dtype=np.float64))
    assert sorted(pc.subtract(background["ts"].cast(pa.int64()), start).to_pylist()) == np.floor(due).astype(int).tolist()
    assert "restricted" not in background["zone_kind"].to_pylist()


def test_load_city_raises_one_incident_per_scheduled_intrusion(tmp_path):
    """Inline, through the city job: every intrusion raises its incident, the background none,
    no row is late or refused, and no window closes before its end is due (the sources'
    progress never runs ahead of the clock)."""
    city = load_city(Scale(cameras=12, stations=3, camera_tasks=2), str(tmp_path))
    schedule = Schedule(((1.6, 4_000.0),), intrusions_per_s=10.0)
    start = int(time.time() * 1000)
    cameras = ScheduledDetections(city, schedule, clock=start, end_after=True)
    stations = ScheduledReadings(city, schedule, interval_s=0.2, clock=start, end_after=True)
    flow = city_flow(city, cameras=cameras, stations=stations, mode="live", serve=False, screen=False, camera_tasks=2, station_tasks=1)
    result = InlineExecutor().run(flow)
    incidents = pa.concat_tables(result.outputs["gateways"])
    assert incidents.num_rows == schedule.total_intrusions() == 16
    assert set(incidents["kind"].to_pylist()) == {"intrusion"}
    for name in ("late_detections", "refused_detections", "refused_readings"):
        assert sum(t.num_rows for t in result.outputs[name]) == 0, name
    closed_by_time = incidents.filter(pc.less_equal(incidents["window_end"].cast(pa.int64()), start + schedule.duration_ms))
    assert closed_by_time.num_rows > 0
    early = pc.less(closed_by_time["emit_time"].cast(pa.int64()), closed_by_time["window_end"].cast(pa.int64()))
    assert not pc.any(early).as_py()


def test_ramp_step_fails_on_p99_or_when_it_falls_behind():
    test = LoadTest(Options(ramp=(1_000.0, 2_000.0), step_s=2.0, p99_bound_ms=50.0, progress=False))
    for second, micros in ((0, 3_000), (1, 4_000), (2, 80_000), (3, 90_000)):
        test.seconds[second].latency.record_value(micros)
    test.per_second = [
        {"t_s": t, "detections_in": rows, "due_so_far": rows}
        for t, rows in ((0.0, 0), (1.0, 1_000), (2.0, 2_000), (3.0, 4_000), (4.0, 6_000))
    ]
    test.options.warmup_s = 0.0
    first, second = test._judge(0, [2.0, 4.0]), test._judge(1, [2.0, 4.0])
    assert first["passed"] and first["latency_ms"]["p99"] == pytest.approx(4.0, rel=0.001)
    assert not second["passed"] and second["kept_up"]  # p99 90 ms over the 50 ms bound
    test.per_second[-1]["detections_in"] = 4_500  # 1,500 rows behind at the step's end
    behind = test._judge(1, [2.0, 4.0])
    assert not behind["kept_up"] and behind["backlog_rows"] == 1_500 and behind["reached_per_s"] == 1_250


def test_cli_refuses_a_bad_ramp(capsys):
    assert main(["loadtest", "--ramp", "10k,20k"]) == 2
    assert "--ramp" in capsys.readouterr().out


@pytest.mark.usefixtures("ray_instance")
def test_a_short_ramp_through_ray_gateways_and_consoles(tmp_path):
    """The real pipeline: two steps, two console processes (one scoped to one district); every
    incident reaches every console entitled to it, the latency histogram has one sample per
    incident and console, and the JSON, Markdown and PNG results are written."""
    options = Options(
        ramp=(500.0, 1_500.0),
        step_s=2.0,
        p99_bound_ms=60_000.0,
        scale=Scale(cameras=12, stations=3, consoles=2, camera_tasks=1),
        intrusions_per_s=6.0,  # 12 a step
        warmup_s=1.0,
        progress=False,
        out=tmp_path / "results",
    )
    report = LoadTest(options, say=lambda _: None).run()
    assert report["delivery"]["every_console_has_all_it_is_entitled_to"], report["delivery"]
    assert report["incidents"]["raised"] == report["incidents"]["expected_intrusions"] == 24
    assert report["incidents"]["raised_by_stop"] == 0
    entitled = sum(c["entitled"] for c in report["delivery"]["consoles"])
    assert [c["entitled"] for c in report["delivery"]["consoles"]] == [24, 8]
    assert report["latency_ms"]["all"]["count"] == entitled
    assert report["detections"]["in"] == report["detections"]["scheduled"] + 24
    assert [s["rate"] for s in report["ramp"]["steps"]] == [500.0, 1_500.0]
    assert report["ramp"]["highest_passing_rate"] == 1_500.0
    second = report["per_second"][1]
    assert second["memory"] and second["detections_per_s"] > 0
    paths = write_results(report, options.out)
    assert json.loads(paths[0].read_text())["incidents"]["raised"] == 24
    assert "Every console received every incident it is entitled to, once: **yes**" in paths[1].read_text()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_of_an_empty_and_a_full_histogram():
    assert figures(histogram())["p99"] is None
    h = histogram()
    for micros in range(1, 1001):
        h.record_value(micros * 1000)
    f = figures(h)
    assert f["count"] == 1000 and 985 <= f["p99"] <= 995 and f["max"] == pytest.approx(1000, rel=0.002)
