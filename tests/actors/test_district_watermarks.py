"""DistrictFusion applies watermarks at firing points only: a window still fires as soon as the
watermark reaches its end, a session at most WATERMARK_STEP_MS later, and the many small
watermarks in between cost nothing."""

from datetime import UTC, datetime

import pyarrow as pa

from actors.district import WATERMARK_STEP_MS, DistrictFusion
from actors.schemas import DETECTION, WEATHER
from actors.topology import load_city
from engine.operator import LATE, MAIN, Collector
from tests.actors.test_rules import detection, reading, table

CITY = load_city()
DAY = int(datetime(2026, 5, 1, 1, 0, tzinfo=UTC).timestamp() * 1000)  # 10:00 KST, on a minute


def test_firing_points_are_window_ends_and_steps():
    fusion = DistrictFusion(CITY)
    fire_ms = round(CITY.rules.fire_window_s * 1000)
    assert fusion._firing_after(DAY - 1) == DAY - 1 + WATERMARK_STEP_MS
    # Close to a window's end, the end comes first: a window [s, e) fires at e - 1.
    assert fusion._firing_after(DAY + fire_ms - 50) == DAY + fire_ms - 1


def test_a_window_fires_when_the_watermark_reaches_its_end_and_not_before():
    fusion = DistrictFusion(CITY)
    incidents: list[pa.RecordBatch] = []
    out = Collector({MAIN: incidents.append, LATE: lambda b: None})
    fusion.process_batch(table([reading(DAY - 30_000, "aws-songdo-1", "songdo")], WEATHER).to_batches()[0], 1, out)
    intruder = detection(DAY + 2_000, zone="lake-shore", zone_kind="restricted", track_id=7)
    fusion.process_batch(table([intruder], DETECTION).to_batches()[0], 0, out)
    window_end = DAY + round(CITY.rules.intrusion_window_s * 1000)
    # Watermarks every millisecond up to just before the window's end: nothing fires, and
    # almost all of them are not even applied.
    applied = 0
    for watermark in range(DAY + 2_001, window_end - 1):
        applied += fusion.on_watermark(watermark, out) is not None
    assert incidents == []
    assert applied < (window_end - DAY) // WATERMARK_STEP_MS + 5
    fusion.on_watermark(window_end - 1, out)
    assert sum(b.num_rows for b in incidents) == 1
    assert incidents[0].column("kind").to_pylist() == ["intrusion"]
