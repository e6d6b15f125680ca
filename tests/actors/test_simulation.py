"""The simulated city feeds: schemas, determinism, realism (rates, tracks, zones, episodes,
weather) and pacing in replay and live mode."""

import copy
import dataclasses
import pickle
import time
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from actors import simulation
from actors.schemas import DETECTION, WEATHER
from actors.simulation import CameraFeed, WeatherFeed, replay_tables
from actors.topology import load_city
from engine import Dataflow, InlineExecutor
from engine.errors import CitystreamError, OptionError
from engine.sources import EndOfInput

CITY = load_city()
RULES = CITY.rules
NO_EPISODES = dict(crowds_per_hour=0, loiterers_per_hour=0, intrusions_per_hour=0, fires_per_hour=0, collisions_per_hour=0)
NOON = "2026-05-01T12:00:00+09:00"
NIGHT = "2026-05-01T03:00:00+09:00"


def city_with(**changes):
    """The default city with other simulation settings."""
    return dataclasses.replace(CITY, simulation=dataclasses.replace(CITY.simulation, **changes))


def drain(feed, partition, partitions):
    """Every batch of one partition of a replay, in order."""
    task = copy.copy(feed)
    task.open(partition, partitions)
    batches = []
    while not isinstance(batch := task.poll(), EndOfInput):
        assert batch is not None, "a replay is never idle"
        batches.append(batch)
    task.close()
    return batches


def cameras_only(city, duration_s, **options):
    feed = CameraFeed(city, duration_s=duration_s, **options)
    groups = len(city.camera_groups())
    return pa.Table.from_batches([b for p in range(groups) for b in drain(feed, p, groups)], schema=DETECTION).combine_chunks()


def millis(column):
    return column.cast(pa.int64()).to_numpy()


def strings(column):
    return np.asarray(column.to_pylist(), dtype=object)


def per_track(table):
    """Rows sorted by track then time, and where each track starts."""
    table = table.sort_by([("track_id", "ascending"), ("ts", "ascending")])
    ids = table["track_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return table, starts, np.r_[starts[1:], len(ids)]


@pytest.fixture(scope="module")
def ten_minutes():
    """A 10-minute replay of the default city: (detections, readings)."""
    return replay_tables(CITY, 600.0)


@pytest.fixture(scope="module")
def quiet_noon():
    """Two minutes at noon without episodes: everyday traffic only."""
    return cameras_only(city_with(start=NOON), 120.0, **NO_EPISODES)


# ---- contract ---------------------------------------------------------------------------------


def test_schemas_are_exactly_the_city_schemas(ten_minutes):
    detections, readings = ten_minutes
    assert CameraFeed(CITY).schema.equals(DETECTION, check_metadata=True)
    assert WeatherFeed(CITY).schema.equals(WEATHER, check_metadata=True)
    assert detections.schema.equals(DETECTION, check_metadata=True)
    assert readings.schema.equals(WEATHER, check_metadata=True)
    first = drain(CameraFeed(CITY, duration_s=0.4), 0, 3)[0]
    assert first.schema.equals(DETECTION, check_metadata=True) and first.num_rows > 0
    assert drain(WeatherFeed(CITY, duration_s=10), 0, 4)[0].schema.equals(WEATHER, check_metadata=True)


def test_partition_count_must_match_groups_and_stations():
    with pytest.raises(CitystreamError, match=r"camera group.* has 3.*opened with 2 partitions"):
        CameraFeed(CITY).open(0, 2)
    with pytest.raises(CitystreamError, match=r"weather station.* has 4.*opened with 3 partitions"):
        WeatherFeed(CITY).open(0, 3)


def test_options_are_checked():
    with pytest.raises(OptionError, match="mode"):
        CameraFeed(CITY, mode="fast")
    with pytest.raises(OptionError, match="duration_s"):
        WeatherFeed(CITY, duration_s=-1)
    with pytest.raises(OptionError, match="fires_per_hour"):
        CameraFeed(CITY, fires_per_hour=-2)
    with pytest.raises(OptionError, match="duration_s"):
        replay_tables(CITY, None)


def test_replays_are_deterministic_per_seed():
    detections, readings = replay_tables(CITY, 30.0, seed=3)
    again, readings_again = replay_tables(CITY, 30.0, seed=3)
    assert detections.num_rows > 0 and readings.num_rows == 4 * 3
    assert detections.drop_columns(["ingest_time"]).equals(again.drop_columns(["ingest_time"]))
    assert readings.equals(readings_again)
    other, other_readings = replay_tables(CITY, 30.0, seed=4)
    assert not detections.drop_columns(["ingest_time"]).equals(other.drop_columns(["ingest_time"]))
    assert not readings.equals(other_readings)
    default, _ = replay_tables(CITY, 5.0)  # no seed: the city's
    assert default.drop_columns(["ingest_time"]).equals(
        replay_tables(CITY, 5.0, seed=CITY.simulation.seed)[0].drop_columns(["ingest_time"])
    )


def test_a_replay_starts_at_the_configured_time_and_lasts_its_duration(ten_minutes):
    detections, readings = ten_minutes
    start = round(datetime.fromisoformat(CITY.simulation.start).timestamp() * 1000)
    ts = millis(detections["ts"])
    assert start <= ts.min() < start + 1000 and start + 599_000 < ts.max() < start + 600_000
    assert sorted(set(millis(readings["ts"]))) == list(range(start, start + 600_000, 10_000))
    assert sorted(set(strings(readings["station"]))) == sorted(s.id for s in CITY.stations)
    batches = drain(CameraFeed(CITY, duration_s=2.0), 1, 3)
    assert len(batches) == 2000 // CITY.simulation.batch_ms  # one batch per batch_ms of event time


def test_feeds_copy_pickle_and_run_in_a_dataflow():
    feed = CameraFeed(CITY, duration_s=3.0)
    assert pickle.loads(pickle.dumps(feed)).seed == CITY.simulation.seed
    flow = Dataflow("city-feeds")
    flow.source("cameras", feed, event_time="ts", out_of_orderness=timedelta(milliseconds=500), parallelism=3).collect(
        "detections"
    )
    flow.source("stations", WeatherFeed(CITY, duration_s=30.0), event_time="ts", parallelism=4).collect("readings")
    result = InlineExecutor().run(flow)
    expected, _ = replay_tables(CITY, 3.0)
    assert result.table("detections").num_rows == expected.num_rows
    assert result.table("readings").num_rows == 4 * 3


# ---- everyday traffic -----------------------------------------------------------------------


def test_rows_follow_the_configured_rate_by_day_and_fall_at_night(quiet_noon):
    rate = CITY.simulation.detections_per_camera_per_s
    cameras = len(CITY.cameras)
    noon = quiet_noon.num_rows / cameras / 120.0
    assert rate * 0.85 < noon < rate * 1.15
    night = cameras_only(city_with(start=NIGHT), 60.0, **NO_EPISODES).num_rows / cameras / 60.0
    assert night < 0.35 * noon
    with_episodes = cameras_only(city_with(start=NOON), 60.0).num_rows / cameras / 60.0
    assert rate * 0.7 < with_episodes < rate * 1.35
    # Every camera is busy, road cameras with vehicles, the others with people.
    labels = quiet_noon.group_by(["camera", "label"]).aggregate([([], "count_all")]).to_pylist()
    counts = {(row["camera"], row["label"]): row["count_all"] for row in labels}
    for camera in CITY.cameras:
        road = any(zone.kind == "road" for zone in camera.zones)
        main = "vehicle" if road else "person"
        assert counts[camera.id, main] > sum(n for (c, label), n in counts.items() if c == camera.id and label != main)
    assert sum(n for (_, label), n in counts.items() if label == "bicycle") > 0


def test_tracks_persist_and_move_smoothly(ten_minutes):
    batches = drain(CameraFeed(CITY, duration_s=30.0), 0, 3)
    seen_in = {}
    for index, batch in enumerate(batches):
        for track in set(batch["track_id"].to_pylist()):
            seen_in.setdefault(track, []).append(index)
    # Many tracks stay for dozens of consecutive batches (seconds), seen about every 200 ms.
    long_lived = [ids for ids in seen_in.values() if len(ids) >= 25 and ids[-1] - ids[0] < 1.3 * len(ids)]
    assert len(long_lived) >= 10 and max(len(ids) for ids in long_lived) >= 75
    table, starts, ends = per_track(ten_minutes[0])
    ts, x, y = millis(table["ts"]), table["frame_x"].to_numpy(), table["frame_y"].to_numpy()
    same = np.ones(len(ts) - 1, bool)
    same[ends[:-1] - 1] = False  # consecutive rows of one track only
    dt = np.diff(ts)[same] / 1000.0
    step = np.hypot(np.diff(x), np.diff(y))[same]
    assert (dt > 0).all()
    assert (step <= 0.6 * dt + 0.03).all()  # no teleporting: fastest is a car at 0.45 frame/s
    assert np.median(dt) == pytest.approx(0.2, abs=0.03)
    # Track ids are unique per camera and tell the camera.
    per_camera = table.group_by("track_id").aggregate([("camera", "count_distinct")])
    assert pc.max(per_camera["camera_count_distinct"]).as_py() == 1
    index = {camera.id: i for i, camera in enumerate(CITY.cameras)}
    assert (table["track_id"].to_numpy() // 10_000_000 == np.array([index[c] for c in strings(table["camera"])])).all()
    # Confidence: a base per track with noise, in [0, 1].
    confidence = table["confidence"].to_numpy()
    assert 0 <= confidence.min() and confidence.max() <= 1
    spread = np.array([confidence[a:b].std() for a, b in zip(starts, ends, strict=True) if b - a > 20])
    assert 0.01 < np.median(spread) < 0.1


def test_zones_districts_and_map_positions_follow_the_topology(ten_minutes):
    table = ten_minutes[0].slice(0, 10_000)
    cameras = {camera.id: camera for camera in CITY.cameras}
    x, y = table["frame_x"].to_numpy(), table["frame_y"].to_numpy()
    assert 0 <= x.min() and x.max() <= 1 and 0 <= y.min() and y.max() <= 1
    for row in table.select(["camera", "district", "frame_x", "frame_y", "zone", "zone_kind", "lat", "lon"]).to_pylist():
        camera = cameras[row["camera"]]
        zone = next((z for z in camera.zones if z.x0 <= row["frame_x"] < z.x1 and z.y0 <= row["frame_y"] < z.y1), None)
        assert (row["zone"], row["zone_kind"]) == ((zone.name, zone.kind) if zone else (None, None))
        assert row["district"] == camera.district
        north = (row["lat"] - camera.lat) * 111_320
        east = (row["lon"] - camera.lon) * 111_320 * np.cos(np.radians(camera.lat))
        assert 1 < np.hypot(north, east) < 150  # tens of metres in front of the camera
    assert table["zone"].null_count > 0 and table["zone"].null_count < table.num_rows


def test_disorder_stays_within_the_bound(ten_minutes):
    detections = ten_minutes[0]
    bound = CITY.simulation.out_of_orderness_ms
    worst = 0
    for group in CITY.camera_groups():
        ts = millis(detections.filter(pc.is_in(detections["camera"], pa.array([c.id for c in group])))["ts"])
        worst = max(worst, int((np.maximum.accumulate(ts) - ts).max()))
    assert 0 < worst <= bound  # some rows arrive late, never later than the bound
    ordered = cameras_only(city_with(out_of_orderness_ms=0), 10.0)
    for group in CITY.camera_groups():
        ts = millis(ordered.filter(pc.is_in(ordered["camera"], pa.array([c.id for c in group])))["ts"])
        assert (np.diff(ts) >= 0).all()


def test_everyday_traffic_raises_no_incident(quiet_noon):
    table = quiet_noon
    labels = strings(table["label"])
    kinds = strings(table["zone_kind"])
    assert set(labels) <= {"person", "vehicle", "bicycle"}
    assert not ((labels == "person") & (kinds == "restricted")).any()
    people, starts, ends = per_track(table.filter(pc.equal(table["label"], "person")))
    ts = millis(people["ts"])
    assert max((ts[b - 1] - ts[a]) / 1000 for a, b in zip(starts, ends, strict=True)) < RULES.loitering_min_s
    assert crowd_windows(table).size == 0


# ---- episodes in a 10-minute replay ---------------------------------------------------------


def crowd_windows(table):
    """(camera, window) pairs with more distinct people in a plaza zone than the crowd rule allows."""
    plaza = table.filter(pc.and_(pc.equal(table["label"], "person"), pc.equal(table["zone_kind"], "plaza")))
    window = pc.divide(millis(plaza["ts"]), int(RULES.crowd_window_s * 1000))
    counts = (
        pa.table({"camera": plaza["camera"], "window": window, "track": plaza["track_id"]})
        .group_by(["camera", "window"])
        .aggregate([("track", "count_distinct")])
    )
    return counts.filter(pc.greater(counts["track_count_distinct"], RULES.crowd_min_persons))["camera"].to_numpy(
        zero_copy_only=False
    )


def test_crowds_gather_in_plazas(ten_minutes):
    cameras = crowd_windows(ten_minutes[0])
    assert len(set(cameras)) >= 2
    plazas = {camera.id for camera in CITY.cameras if any(zone.kind == "plaza" for zone in camera.zones)}
    assert set(cameras) <= plazas


def test_loiterers_stay_slowly_without_long_gaps(ten_minutes):
    detections = ten_minutes[0]
    people, starts, ends = per_track(detections.filter(pc.equal(detections["label"], "person")))
    ts, x, y = millis(people["ts"]), people["frame_x"].to_numpy(), people["frame_y"].to_numpy()
    loiterers = [
        (a, b)
        for a, b in zip(starts, ends, strict=True)
        if (ts[b - 1] - ts[a]) / 1000 > RULES.loitering_min_s and np.diff(ts[a:b]).max() <= RULES.loitering_gap_s * 1000
    ]
    assert len(loiterers) >= 2
    for a, b in loiterers:  # they wander slowly: a walker crosses the frame in under a minute
        later = np.arange(a, b - 25)
        speed = np.hypot(x[later + 25] - x[later], y[later + 25] - y[later]) / ((ts[later + 25] - ts[later]) / 1000)
        assert speed.mean() < 0.015


def test_intruders_walk_into_restricted_zones(ten_minutes):
    detections = ten_minutes[0]
    inside = detections.filter(
        pc.and_(
            pc.and_(pc.equal(detections["label"], "person"), pc.equal(detections["zone_kind"], "restricted")),
            pc.greater(detections["confidence"], RULES.intrusion_min_confidence),
        )
    )
    assert len(set(inside["track_id"].to_pylist())) >= 2
    for track in inside["track_id"].unique().to_pylist():  # they came from outside the zone, and left
        kinds = detections.filter(pc.equal(detections["track_id"], track)).sort_by("ts")["zone_kind"].to_pylist()
        assert kinds[0] != "restricted" and "restricted" in kinds


def test_fire_or_smoke_is_seen_repeatedly(ten_minutes):
    detections = ten_minutes[0]
    fire = detections.filter(
        pc.and_(
            pc.is_in(detections["label"], pa.array(["fire", "smoke"])),
            pc.greater(detections["confidence"], RULES.fire_min_confidence),
        )
    )
    window = pc.divide(millis(fire["ts"]), int(RULES.fire_window_s * 1000))
    counts = pa.table({"camera": fire["camera"], "window": window}).group_by(["camera", "window"]).aggregate([([], "count_all")])
    assert pc.max(counts["count_all"]).as_py() >= RULES.fire_min_detections


def test_collisions_happen_on_roads(ten_minutes):
    detections = ten_minutes[0]
    collisions = detections.filter(pc.equal(detections["label"], "collision"))
    strong = collisions.filter(pc.greater(collisions["confidence"], RULES.road_min_confidence))
    assert len(set(strong["track_id"].to_pylist())) >= 2
    assert set(collisions["zone_kind"].to_pylist()) == {"road"}


def test_yellow_dust_shows_in_a_short_replay(ten_minutes):
    readings = ten_minutes[1]
    assert pc.max(readings["pm10"]).as_py() > RULES.dust_levels[1]
    assert pc.min(readings["pm10"]).as_py() < 80  # it builds up from clean air


def test_episode_rates_can_be_raised():
    fires = cameras_only(CITY, 20.0, **{**NO_EPISODES, "fires_per_hour": 900.0})
    assert set(fires["label"].to_pylist()) >= {"fire", "smoke"}


# ---- weather ----------------------------------------------------------------------------------


def weather_days(days, **options):
    city = city_with(reading_interval_s=120.0, start="2026-05-01T00:00:00+09:00")
    feed = WeatherFeed(city, duration_s=days * 86_400.0, **options)
    readings = pa.Table.from_batches([b for p in range(4) for b in drain(feed, p, 4)], schema=WEATHER)
    assert readings.num_rows == 4 * days * 720
    return {name: readings[name].to_numpy() for name in WEATHER.names[3:]}, (millis(readings["ts"]) / 3_600_000 + 9) % 24


def test_weather_follows_the_day():
    column, hour = weather_days(1, rain_spells_per_hour=0.0, dust_episodes_per_hour=0.0, dust_episode_at_start=False)
    at = {h: (hour >= h) & (hour < h + 1) for h in (4, 12, 15, 23)}
    assert (column["solar_radiation"][at[4] | at[23]] == 0).all()
    assert 500 < column["solar_radiation"][at[12]].mean() <= 900
    assert column["temperature"][at[15]].mean() > column["temperature"][at[4]].mean() + 8
    assert 4 < column["temperature"].min() and column["temperature"].max() < 26  # a spring day
    assert column["humidity"][at[15]].mean() < column["humidity"][at[4]].mean() - 30
    assert (column["precipitation"] == 0).all() and (column["pm10"] < 100).all() and (column["visibility"] >= 10_000).all()
    assert (column["wind_direction"] != column["wind_direction"][0]).any()


def test_weather_stays_physical_in_rain_and_dust():
    column, _ = weather_days(2, rain_spells_per_hour=0.4, dust_episodes_per_hour=0.2)
    assert (-10 < column["temperature"]).all() and (column["temperature"] < 35).all()
    assert (30 <= column["humidity"]).all() and (column["humidity"] <= 100).all()
    assert (0 <= column["wind_speed"]).all() and (column["wind_speed"] <= 15).all() and (column["wind_speed"] > 8).any()
    assert (0 <= column["wind_direction"]).all() and (column["wind_direction"] < 360).all()
    assert (0 <= column["solar_radiation"]).all() and (column["solar_radiation"] <= 900).all()
    assert (0 < column["pm10"]).all() and (column["pm10"] > 151).any() and np.median(column["pm10"]) < 70
    assert (980 < column["pressure"]).all() and (column["pressure"] < 1040).all()
    rain = column["precipitation"] > 0
    assert rain.any() and (~rain).any() and (column["precipitation"][rain] >= 1).all() and (column["precipitation"] <= 12).all()
    assert (100 <= column["visibility"]).all() and (column["visibility"] <= 20_000).all()
    assert np.median(column["visibility"][rain]) < np.median(column["visibility"][~rain]) / 2
    assert column["visibility"][column["pm10"] > 300].max() < 10_000  # yellow dust hides the view


# ---- live mode --------------------------------------------------------------------------------


def test_live_camera_feed_follows_the_wall_clock():
    feed = CameraFeed(city_with(batch_ms=50), mode="live")
    feed.open(0, 3)
    opened = simulation._wall_ms()
    assert feed.poll() is None  # the first period is not over yet
    time.sleep(0.06)
    batch = feed.poll()
    assert isinstance(batch, pa.RecordBatch) and batch.schema.equals(DETECTION)
    if batch.num_rows:
        ts = millis(batch["ts"])
        assert opened - 50 <= ts.min() and ts.max() <= simulation._wall_ms()


def test_live_feeds_wait_for_their_period_and_skip_ahead_when_far_behind(monkeypatch):
    clock = [1_777_000_000_000]
    monkeypatch.setattr(simulation, "_wall_ms", lambda: clock[0])
    feed = CameraFeed(CITY, mode="live")
    feed.open(2, 3)
    assert feed.poll() is None
    clock[0] += CITY.simulation.batch_ms - 1
    assert feed.poll() is None
    clock[0] += 1
    batch = feed.poll()
    assert batch.num_rows > 0 and millis(batch["ts"]).max() < clock[0]
    assert set(millis(batch["ingest_time"])) == {clock[0]}
    assert feed.poll() is None
    clock[0] += 3_600_000  # the process was paused for an hour
    batch = feed.poll()
    assert (
        batch.num_rows > 0
        and millis(batch["ts"]).min() >= clock[0] - 2 * CITY.simulation.batch_ms - CITY.simulation.out_of_orderness_ms
    )
    polled = 0
    while feed.poll() is not None:
        polled += 1
    assert polled <= 1  # at most a period behind after the skip

    stations = WeatherFeed(CITY, mode="live", duration_s=25.0)
    stations.open(3, 4)
    start = clock[0]
    assert millis(stations.poll()["ts"]).tolist() == [start]  # a reading is due when its time comes
    assert stations.poll() is None
    clock[0] += 10_000
    assert millis(stations.poll()["ts"]).tolist() == [start + 10_000]
    clock[0] += 20_000
    assert millis(stations.poll()["ts"]).tolist() == [start + 20_000]
    assert isinstance(stations.poll(), EndOfInput)
