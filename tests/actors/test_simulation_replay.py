"""Checkpoints of the simulated feeds: a camera or weather feed restored from a snapshot (in a
fresh instance, through the state codec) returns exactly the batches the original goes on to
return, in replay and in live mode.

Batches are compared without ``ingest_time``: it is the wall clock when a batch was built, not
part of the simulation (in live tests the clock is moved by hand and it matches as well).
"""

import copy
import dataclasses
import math
import numbers

import numpy as np
import pyarrow as pa
import pytest

from actors import simulation
from actors.simulation import CameraFeed, WeatherFeed
from actors.topology import load_city
from engine.sources import EndOfInput
from engine.state import StateError, roundtrip

CITY = load_city()
CAMERA_GROUPS = len(CITY.camera_groups())
STATIONS = len(CITY.stations)


def busy_cameras(duration_s):
    """Episodes far more often than by default, so that snapshots catch crowds forming,
    intruders lingering, fires burning and collisions on the road."""
    return CameraFeed(
        CITY,
        duration_s=duration_s,
        crowds_per_hour=400,
        loiterers_per_hour=300,
        intrusions_per_hour=400,
        fires_per_hour=300,
        collisions_per_hour=400,
    )


def batch_of(polled):
    assert isinstance(polled, pa.RecordBatch), polled
    return polled


def same(a, b):
    """Equal batches (END_OF_INPUT and None too), ignoring the wall-clock ``ingest_time``."""
    if not isinstance(a, pa.RecordBatch) or not isinstance(b, pa.RecordBatch):
        return a is b
    if "ingest_time" in a.schema.names:
        a, b = a.drop_columns(["ingest_time"]), b.drop_columns(["ingest_time"])
    return a.equals(b)


def assert_same_state(a, b, path):
    """Every field of the two simulations is equal: a field the snapshot forgot shows here,
    even if the short runs of these tests would not show it in their batches."""
    if isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, pa.Array | pa.RecordBatch):
        assert a.equals(b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, numbers.Real) and not isinstance(a, bool):
        assert isinstance(a, float | np.floating) == isinstance(b, float | np.floating), path
        assert a == b or (math.isnan(a) and math.isnan(b)), f"{path}: {a} != {b}"
    elif hasattr(a, "__dict__") and not dataclasses.is_dataclass(a):
        assert type(a) is type(b), path
        assert_same_state(vars(a), vars(b), path)
    else:
        assert a == b, path


def simulation_of(feed):
    return feed._sim if isinstance(feed, CameraFeed) else feed._station


def check_restores(feed, partition, partitions, ks):
    """Opens the feed, polls it to its end, and at each poll count of ``ks`` restores a fresh
    copy from a snapshot: the copy must be in the same state and return the same batches."""
    original = copy.copy(feed)
    original.open(partition, partitions)
    polled = 0
    restored = []  # fresh copies, each polled in step with the original from its snapshot on
    while True:
        if polled in ks:
            state = roundtrip(original.snapshot())
            fresh = copy.copy(feed)
            fresh.open(partition, partitions)
            fresh.restore(state)
            assert_same_state(simulation_of(original), simulation_of(fresh), "simulation")
            assert (fresh._start_ms, fresh._end_ms, fresh._step) == (original._start_ms, original._end_ms, original._step)
            restored.append(fresh)
        batch = original.poll()
        polled += 1
        for fresh in restored:
            assert same(fresh.poll(), batch), f"partition {partition}, poll {polled}"
        if isinstance(batch, EndOfInput):
            break
    assert len(restored) == len(ks), f"the feed ended after {polled} polls, before all of {sorted(ks)}"
    return polled


@pytest.mark.parametrize("partition", [0, CAMERA_GROUPS - 1])
def test_a_restored_camera_replay_returns_the_same_batches(partition):
    periods = 120 * 1000 // CITY.simulation.batch_ms  # two minutes
    polled = check_restores(
        CameraFeed(CITY, duration_s=120.0), partition, CAMERA_GROUPS, {0, 1, 7, periods // 2, periods - 1, periods}
    )
    assert polled == periods + 1  # the last poll is END_OF_INPUT, and so it is for a copy restored at the end


@pytest.mark.parametrize("partition", [0, 1])
def test_a_restored_camera_replay_keeps_its_episodes(partition):
    feed = busy_cameras(300.0)
    check_restores(feed, partition, CAMERA_GROUPS, {0, 3, 333, 700, 1100, 1499})


def test_snapshots_of_a_camera_replay_hold_its_episodes():
    """The snapshots of the busy test above do catch what they are meant to: intruders on their
    way, crowds, fires, rows not arrived yet."""
    feed = busy_cameras(300.0)
    feed.open(0, CAMERA_GROUPS)
    stages: set[int] = set()
    roles: set[int] = set()
    pending = crowds = 0
    for _ in range(1500):
        feed.poll()
        state = roundtrip(feed.snapshot())["simulation"]
        ints = state["track_ints"]
        stages |= set(ints[:, simulation._Tracks.INT_INDEX["stage"]].tolist())
        roles |= set(ints[:, simulation._Tracks.INT_INDEX["role"]].tolist())
        pending += sum(rows.shape[1] for rows, _ in state["pending"])
        crowds += int(np.count_nonzero(state["crowd_end"] > feed._start_ms + feed._step * CITY.simulation.batch_ms))
    assert stages >= {simulation._APPROACH, simulation._LINGER, simulation._LEAVE}
    assert roles == set(range(7))
    assert pending and crowds


@pytest.mark.parametrize("partition", [0, STATIONS - 1])
def test_a_restored_weather_replay_returns_the_same_readings(partition):
    # Eight hours of readings (2880): rain spells and dust episodes come and go in them.
    feed = WeatherFeed(CITY, duration_s=8 * 3600.0, rain_spells_per_hour=2.0, dust_episodes_per_hour=0.5)
    polled = check_restores(feed, partition, STATIONS, {0, 1, 2, 500, 1440, 2879, 2880})
    assert polled == 2881


def test_a_restored_weather_replay_with_the_default_rates():
    check_restores(WeatherFeed(CITY, duration_s=600.0), 1, STATIONS, {0, 5, 30, 59, 60})


def test_a_snapshot_is_refused_before_open_and_restored_only_into_its_partition():
    feed = CameraFeed(CITY, duration_s=10.0)
    assert feed.replayable and WeatherFeed(CITY).replayable
    with pytest.raises(StateError, match="open"):
        copy.copy(feed).snapshot()
    original = copy.copy(feed)
    original.open(1, CAMERA_GROUPS)
    original.poll()
    other = copy.copy(feed)
    other.open(2, CAMERA_GROUPS)
    with pytest.raises(StateError, match="camera group 1 cannot be restored into camera group 2"):
        other.restore(roundtrip(original.snapshot()))


# ---- live mode --------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """The feeds' wall clock, moved by the test."""
    now = [1_777_000_000_000]
    monkeypatch.setattr(simulation, "_wall_ms", lambda: now[0])
    return now


def poll_in_step(original, fresh, clock, until_ms, every_ms):
    """Polls both feeds at the same moments up to ``until_ms``; returns the batches."""
    batches = []
    while clock[0] < until_ms:
        clock[0] += every_ms
        while True:
            batch = original.poll()
            assert same(fresh.poll(), batch), f"at {clock[0]}"
            if not isinstance(batch, pa.RecordBatch):
                break
            batches.append(batch)
    return batches


def test_a_restored_live_camera_feed_goes_on_from_the_checkpointed_period(clock):
    period = CITY.simulation.batch_ms
    feed = CameraFeed(CITY, mode="live")
    original = copy.copy(feed)
    original.open(1, CAMERA_GROUPS)
    opened = clock[0]
    for _ in range(50):
        clock[0] += period
        assert isinstance(original.poll(), pa.RecordBatch)
    state = roundtrip(original.snapshot())

    fresh = copy.copy(feed)
    clock[0] += 7_777  # the restarted task opens later: its own start would be this clock
    fresh.open(1, CAMERA_GROUPS)
    fresh.restore(state)
    assert fresh._start_ms == opened and fresh._step == 50
    clock[0] -= 7_777
    # Polled at the same moments, the copy returns what the original returns: the periods
    # after the checkpoint, not the restart's.
    batches = poll_in_step(original, fresh, clock, clock[0] + 20 * period, period // 2)
    assert len(batches) == 20 and all(b.num_rows for b in batches)
    first = batches[0]["ts"].cast(pa.int64()).to_numpy()
    assert first.min() >= opened + 50 * period - CITY.simulation.out_of_orderness_ms
    # Far behind the clock (a pause of an hour), both skip ahead alike and go on in step.
    clock[0] += 3_600_000
    skipped = poll_in_step(original, fresh, clock, clock[0] + 10 * period, period)
    assert len(skipped) >= 10 and all(b.num_rows for b in skipped)
    assert skipped[0]["ts"].cast(pa.int64()).to_numpy().min() >= clock[0] - 20 * period
    assert original._step == fresh._step


def test_a_live_camera_feed_restored_long_after_its_checkpoint_skips_ahead(clock):
    period = CITY.simulation.batch_ms
    original = CameraFeed(CITY, mode="live")
    original.open(0, CAMERA_GROUPS)
    for _ in range(10):
        clock[0] += period
        original.poll()
    state = roundtrip(original.snapshot())
    checkpointed = original._start_ms + 10 * period
    clock[0] += 600_000  # restored ten minutes later
    fresh = CameraFeed(CITY, mode="live")
    fresh.open(0, CAMERA_GROUPS)
    fresh.restore(state)
    batch = batch_of(fresh.poll())
    assert same(batch, original.poll())  # what the original would have done after such a pause
    ts = batch["ts"].cast(pa.int64()).to_numpy()
    assert batch.num_rows and ts.min() > checkpointed + 590_000 and ts.max() < clock[0]  # the gap is dropped
    # New tracks go on numbering from the checkpoint's counters: ids are not given out twice.
    counters = state["simulation"]["id_counter"]
    assert counters.min() > 0
    assert (batch["track_id"].cast(pa.int64()).to_numpy() % 10_000_000).min() >= counters.min()


def test_a_restored_live_weather_feed_goes_on_from_the_checkpointed_reading(clock):
    interval = round(CITY.simulation.reading_interval_s * 1000)
    feed = WeatherFeed(CITY, mode="live", duration_s=120.0)
    original = copy.copy(feed)
    original.open(2, STATIONS)
    opened = clock[0]
    readings = []
    for _ in range(4):
        readings.append(batch_of(original.poll()))
        clock[0] += interval
    assert [r["ts"][0].value for r in readings] == [opened + i * interval for i in range(4)]
    state = roundtrip(original.snapshot())
    fresh = copy.copy(feed)
    clock[0] += 3_333
    fresh.open(2, STATIONS)
    fresh.restore(state)
    clock[0] -= 3_333
    assert fresh._start_ms == opened
    later = poll_in_step(original, fresh, clock, opened + 120_000, interval // 4)
    assert [r["ts"][0].value for r in later] == [opened + i * interval for i in range(4, 12)]
    assert isinstance(fresh.poll(), EndOfInput)
