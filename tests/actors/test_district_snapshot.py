"""Checkpoints of the district and gateway actors: restored from a snapshot (through the state
codec), they raise and keep exactly the incidents of a run that was never interrupted.

The district actor is driven directly on a replay of the simulated city: detections and
readings in steps of event time, a watermark after each step, some detections held back
until they are late. A restore may come anywhere: in the middle of the as-of join's pending
rows, of open rule windows and loitering sessions, of the dust window, and while episodes
are suppressed by ``repeat_after_s``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from actors.district import DistrictFusion
from actors.gateway import PoliceGateway
from actors.schemas import INCIDENT
from actors.simulation import replay_tables
from actors.topology import load_city
from engine.operator import LATE, MAIN, Collector
from engine.state import roundtrip
from engine.timeutil import MAX_WATERMARK

CITY = load_city()
STEP_MS = 2_000
HELD_BACK_MS = 3_000  # a held-back detection comes this much later than its step: late
WALL_CLOCK = ("emit_time", "ingest_time")  # incident columns that are not event-time results

Event = tuple[str, int, Any]  # ("batch", input, RecordBatch) or ("watermark", 0, ms)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    """400 s of the city (seed 11): long enough for a crowd to be raised, suppressed as the same
    episode within repeat_after_s, and raised again."""
    detections, readings = replay_tables(CITY, 400.0, seed=11)
    rng = np.random.default_rng(7)
    held_back = rng.random(detections.num_rows) < 0.02
    arrival = pc.add(pc.cast(detections.column("ts"), pa.int64()), pa.array(np.where(held_back, HELD_BACK_MS, 0)))
    detections = detections.append_column("__arrival", arrival)
    readings = readings.append_column("__arrival", pc.cast(readings.column("ts"), pa.int64()))
    start = pc.min(arrival).as_py() // STEP_MS * STEP_MS
    end = pc.max(arrival).as_py() + STEP_MS
    out_of_orderness = CITY.simulation.out_of_orderness_ms
    result: list[Event] = []
    for step in range(start, end, STEP_MS):
        for index, table in ((0, detections), (1, readings)):
            due = pc.and_(pc.greater_equal(table.column("__arrival"), step), pc.less(table.column("__arrival"), step + STEP_MS))
            rows = table.filter(due).drop_columns(["__arrival"]).combine_chunks()
            if rows.num_rows:
                result.append(("batch", index, rows.to_batches()[0]))
        result.append(("watermark", 0, step + STEP_MS - 1 - out_of_orderness))
    result.append(("watermark", 0, MAX_WATERMARK))
    return result


class Recorder:
    def __init__(self) -> None:
        self.incidents: list[pa.RecordBatch] = []
        self.late: list[pa.RecordBatch] = []
        self.forwarded: list[int | None] = []
        self.collector = Collector({MAIN: self.incidents.append, LATE: self.late.append})


def drive(district: DistrictFusion, events: list[Event], recorder: Recorder) -> None:
    for kind, index, value in events:
        if kind == "batch":
            district.process_batch(value, index, recorder.collector)
        else:
            recorder.forwarded.append(district.on_watermark(value, recorder.collector))


def fresh() -> DistrictFusion:
    district = DistrictFusion(CITY)
    district.open(0, 1)
    return district


def replay(events: list[Event], cuts: list[int] = (), encode_late: bool = False) -> dict[str, Any]:  # type: ignore[assignment]
    """Incidents (all columns but the wall-clock ones, sorted), late detections and forwarded
    watermarks of a run restored from its snapshot at each cut."""
    recorder = Recorder()
    district, position = fresh(), 0
    for cut in sorted(cuts):
        drive(district, events[position:cut], recorder)
        state = district.snapshot()
        if encode_late:  # the original goes on before the snapshot is encoded
            drive(district, events[cut:], Recorder())
        district = fresh()
        district.restore(roundtrip(state))
        position = cut
    drive(district, events[position:], recorder)
    incidents = pa.Table.from_batches(recorder.incidents, schema=INCIDENT).drop_columns(list(WALL_CLOCK))
    late = [tuple(r.values()) for b in recorder.late for r in b.to_pylist()]
    return {
        "incidents": sorted((tuple(r.values()) for r in incidents.to_pylist()), key=repr),
        "late": sorted(late, key=repr),
        "forwarded": recorder.forwarded,
    }


@pytest.fixture(scope="module")
def uninterrupted(events: list[Event]) -> dict[str, Any]:
    return replay(events)


def test_the_replay_raises_incidents_of_several_kinds_and_has_late_detections(uninterrupted: dict[str, Any]) -> None:
    kinds = {row[INCIDENT.names.index("kind")] for row in uninterrupted["incidents"]}
    assert len(uninterrupted["incidents"]) >= 5 and len(kinds) >= 3
    assert uninterrupted["late"]


@pytest.mark.parametrize("share", [0.0, 0.1, 0.33, 0.5, 0.77, 0.95])
def test_a_restored_district_raises_the_same_incidents(events: list[Event], uninterrupted: dict[str, Any], share: float) -> None:
    restored = replay(events, [int(share * len(events))])
    ids, severity = INCIDENT.names.index("incident_id"), INCIDENT.names.index("severity")
    assert [(r[ids], r[severity]) for r in restored["incidents"]] == [(r[ids], r[severity]) for r in uninterrupted["incidents"]]
    assert restored == uninterrupted


def test_restored_many_times(events: list[Event], uninterrupted: dict[str, Any]) -> None:
    assert replay(events, list(range(7, len(events), len(events) // 9))) == uninterrupted


def test_a_district_snapshot_is_not_changed_by_what_follows_it(events: list[Event], uninterrupted: dict[str, Any]) -> None:
    assert replay(events, [len(events) // 2], encode_late=True) == uninterrupted


def test_the_district_snapshot_is_keyed_by_rule_kind(events: list[Event]) -> None:
    district = fresh()
    drive(district, events[: len(events) // 2], Recorder())
    state = roundtrip(district.snapshot())
    assert set(state) == {"join", "rules", "dust", "raised"}
    assert set(state["rules"]) == {"intrusion", "loitering", "crowd", "fire", "road"}
    assert state["raised"] and all(isinstance(end, int) for end in state["raised"].values())


def test_a_restored_gateway_keeps_the_same_incidents_and_counts(events: list[Event]) -> None:
    district = fresh()
    recorder = Recorder()
    drive(district, events, recorder)
    gateway_id = CITY.gateways[0].id
    routed = [b.filter(pc.equal(b.column("gateway"), gateway_id)) for b in recorder.incidents]
    batches = [b for b in routed if b.num_rows]
    assert len(batches) >= 3

    def fresh_gateway() -> PoliceGateway:
        gateway = PoliceGateway(CITY, serve=False)  # no incident log or gRPC server: not checkpoint state
        gateway.open(0, len(CITY.gateways))
        return gateway

    def run(cut: int | None) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int], int]:
        gateway = fresh_gateway()
        for i, batch in enumerate(batches):
            if i == cut:
                state = roundtrip(gateway.snapshot())
                gateway = fresh_gateway()
                gateway.restore(state)
            gateway.process_batch(batch, 0, Collector({}))
        return gateway.result().to_pylist(), dict(gateway.counts), gateway.logged

    expected = run(None)
    for cut in range(len(batches) + 1):
        assert run(cut) == expected
