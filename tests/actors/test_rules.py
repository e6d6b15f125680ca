"""Each incident rule on hand-written detections and readings: exactly the expected incidents,
and none where none is due; routing to gateways; dead letters for bad rows."""

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from actors.city import city_flow
from actors.schemas import DETECTION, INCIDENT, WEATHER
from actors.topology import load_city
from engine import InlineExecutor, TableSource

CITY = load_city()
# 10:00 KST on 2026-05-01 (01:00 UTC), and 23:00 KST.
DAY = int(datetime(2026, 5, 1, 1, 0, tzinfo=UTC).timestamp() * 1000)
NIGHT = DAY + 13 * 3_600_000


def detection(ts, camera="songdo-central-park", district="songdo", track_id=1, label="person", confidence=0.9,
              zone="plaza", zone_kind="plaza", frame_x=0.5, frame_y=0.5):
    return {"ts": ts, "camera": camera, "district": district, "track_id": track_id, "label": label, "confidence": confidence,
            "frame_x": frame_x, "frame_y": frame_y, "lat": 37.39, "lon": 126.64, "zone": zone, "zone_kind": zone_kind,
            "ingest_time": ts}


def reading(ts, station="aws-songdo-1", district="songdo", **values):
    row = {"ts": ts, "station": station, "district": district, "temperature": 15.0, "humidity": 60.0, "wind_speed": 2.0,
           "wind_direction": 0.0, "solar_radiation": 300.0, "pm10": 40.0, "pressure": 1013.0, "precipitation": 0.0,
           "visibility": 15000.0}
    row.update(values)
    return row


def table(rows, schema):
    columns = {name: [r[name] for r in rows] for name in schema.names}
    for name in ("ts", "ingest_time"):
        if name in columns:
            columns[name] = pa.array(columns[name], pa.int64()).cast(schema.field(name).type)
    return pa.table(columns, schema=schema)


def calm(start=DAY - 60_000, end=DAY + 700_000, **values):
    """A reading a minute for every station (the join needs every district's weather)."""
    return [reading(ts, s.id, s.district, **values) for ts in range(start, end, 60_000) for s in CITY.stations]


def run(detections, readings=None, executor=None):
    flow = city_flow(
        CITY,
        cameras=TableSource(table(detections, DETECTION), batch_size=50),
        stations=TableSource(table(readings if readings is not None else calm(), WEATHER), batch_size=50),
        serve=False,  # the rules only: no incident log, no gRPC server (tests/actors/test_dispatch.py has those)
        screen=False,  # nor the screens (tests/actors/test_web.py)
    )
    return (executor or InlineExecutor()).run(flow)


def incidents(result, kind=None):
    out = result.table("gateways")
    assert out.schema == INCIDENT
    rows = out.to_pylist()
    return sorted((r for r in rows if kind is None or r["kind"] == kind), key=lambda r: r["incident_id"])


def test_intrusion_into_a_restricted_zone_and_more_severe_at_night():
    rows = [detection(DAY + i * 200, zone="lake-shore", zone_kind="restricted") for i in range(5)]
    rows += [detection(NIGHT + i * 200, track_id=2, zone="lake-shore", zone_kind="restricted") for i in range(3)]
    readings = calm() + calm(NIGHT - 60_000, NIGHT + 120_000)
    found = incidents(run(rows, readings), "intrusion")
    assert [(r["severity"], r["district"], r["cameras"], r["gateway"]) for r in found] == [
        (3, "songdo", ["songdo-central-park"], "incheon-yeonsu-police"),
        (4, "songdo", ["songdo-central-park"], "incheon-yeonsu-police"),
    ]
    assert found[0]["incident_id"] == f"intrusion:songdo:songdo-central-park:lake-shore:1:{DAY // 60_000 * 60_000}"
    assert "5 detections" in found[0]["evidence"] and "at night" in found[1]["evidence"]
    assert found[0]["weather_temperature"] == 15.0 and found[0]["weather_pm10"] == 40.0
    assert found[0]["trigger_time"] == datetime.fromtimestamp((DAY + 800) / 1000, UTC)


def test_no_intrusion_outside_restricted_zones_or_below_the_confidence():
    rows = [detection(DAY + i * 200) for i in range(5)]
    rows += [detection(DAY + i * 200, track_id=2, zone="lake-shore", zone_kind="restricted", confidence=0.3) for i in range(5)]
    assert incidents(run(rows), "intrusion") == []


def test_loitering_is_a_track_staying_longer_than_the_threshold():
    stay = [detection(DAY + i * 5_000, track_id=7) for i in range(21)]  # 100 s, never 20 s unseen
    passing = [detection(DAY + i * 5_000, track_id=8) for i in range(12)]  # 55 s
    found = incidents(run(stay + passing), "loitering")
    assert len(found) == 1
    assert found[0]["severity"] == 2 and "person track 7 stayed 100 s" in found[0]["evidence"]


def test_crowd_gathering_by_distinct_people_per_window_and_yellow_dust_raises_it():
    def people(count, start):
        return [detection(start + i * 100, track_id=1000 + i) for i in range(count)]

    # 14: below the threshold; 15: a crowd; 20 a window later: the same crowd, not raised again
    # within repeat_after_s (300 s); 30 people 6 minutes later: a new, bigger one.
    rows = people(14, DAY) + people(15, DAY + 30_000) + people(20, DAY + 60_000) + people(30, DAY + 390_000)
    found = incidents(run(rows), "crowd")
    assert [(r["window_start"].timestamp() * 1000 - DAY, r["severity"]) for r in found] == [(30_000, 2), (390_000, 3)]
    assert found[0]["evidence"].startswith("15 people in view of songdo-central-park")
    dusty = incidents(run(people(15, DAY), calm(pm10=200.0)), "crowd")
    assert [r["severity"] for r in dusty] == [3]


def test_fire_severity_follows_wind_and_humidity_and_warns_the_downwind_neighbour():
    fire = [detection(DAY + i * 1_000, track_id=50, label="fire", zone="plaza") for i in range(3)]
    calm_fire = incidents(run(fire), "fire")
    assert [(r["district"], r["severity"]) for r in calm_fire] == [("songdo", 4)]
    # Wind from 110 degrees blows towards 290: Yeongjong, Songdo's neighbour at bearing 290.
    windy = incidents(run(fire, calm(wind_speed=10.0, wind_direction=110.0, humidity=30.0)), "fire")
    assert [(r["district"], r["severity"], r["gateway"]) for r in windy] == [
        ("songdo", 5, "incheon-yeonsu-police"),
        ("yeongjong", 4, "incheon-yeonsu-police"),
    ]
    assert windy[1]["incident_id"].endswith(":warn") and "smoke from a fire in songdo" in windy[1]["evidence"]
    smoke = [detection(DAY + i * 1_000, track_id=51, label="smoke") for i in range(3)]
    assert [r["severity"] for r in incidents(run(smoke), "fire")] == [3]
    assert incidents(run(fire[:2]), "fire") == []


def test_road_incidents_weigh_rain_and_visibility():
    crash = [detection(DAY + i * 1_000, camera="cheongna-ic", district="cheongna", track_id=9, label="collision", zone="ramp",
                       zone_kind="road") for i in range(2)]
    assert [(r["severity"], r["gateway"]) for r in incidents(run(crash), "road")] == [(3, "incheon-seo-police")]
    assert [r["severity"] for r in incidents(run(crash, calm(precipitation=6.0)), "road")] == [4]
    assert [r["severity"] for r in incidents(run(crash, calm(precipitation=6.0, visibility=400.0)), "road")] == [5]


def test_yellow_dust_advisory_by_mean_pm10_per_district():
    readings = calm(DAY, DAY + 600_000)
    readings = [r if r["district"] != "yeongjong" else {**r, "pm10": 200.0} for r in readings]
    found = incidents(run([detection(DAY)], readings), "yellow_dust")
    assert [(r["district"], r["severity"], r["cameras"]) for r in found] == [("yeongjong", 3, [])]
    assert found[0]["evidence"].startswith("PM10 mean 200 ug/m3")


def test_bad_rows_go_to_the_dead_letters_with_their_reason():
    rows = [
        detection(DAY),
        detection(DAY + 1, camera="cam-unknown"),
        detection(DAY + 2, district="cheongna"),
        detection(DAY + 3, confidence=1.5),
        detection(DAY + 4, confidence=float("nan")),
        detection(DAY + 5, label="dragon"),
        detection(int(datetime.now(UTC).timestamp() * 1000) + 3_600_000),
    ]
    readings = calm() + [reading(DAY, humidity=150.0), reading(DAY, station="aws-nowhere")]
    result = run(rows, readings)
    refused = result.table("refused_detections").to_pylist()
    assert [r["reason"] for r in refused] == [
        "unknown camera",
        "district is not the camera's",
        "confidence outside [0, 1] or NaN",
        "confidence outside [0, 1] or NaN",
        "unknown label",
        "time too far in the future",
    ]
    assert sorted(r["reason"] for r in result.table("refused_readings").to_pylist()) == [
        "humidity outside [0, 100] % or NaN",
        "unknown station",
    ]


@pytest.mark.parametrize("kind", ["crowd"])
def test_the_same_incidents_on_ray(kind, ray_instance):
    from engine import ChannelOptions, RayExecutor

    rows = [detection(DAY + i * 100, track_id=1000 + i) for i in range(20)]
    inline = incidents(run(rows), kind)
    on_ray = incidents(run(rows, executor=RayExecutor(channels=ChannelOptions(linger_ms=2))), kind)
    assert [r["incident_id"] for r in on_ray] == [r["incident_id"] for r in inline] and len(inline) == 1
