"""The screens' pages and live events (issue 10, work in progress): the map from the topology,
the residents' page without camera ids or positions, SSE scoped by token, with catch-up."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from actors.topology import load_city
from actors.web.hub import EventHub
from actors.web.render import dust_advice, map_svg, residents_page
from actors.web.server import ScreenServer

CITY = load_city()
WEATHER = {"temperature": 18.5, "humidity": 40.0, "wind_speed": 3.2, "wind_direction": 270.0, "pm10": 160.0,
           "precipitation": 0.0, "visibility": 9000.0}  # fmt: skip


def test_the_map_draws_every_district_camera_and_station_of_the_topology():
    svg = map_svg(CITY)
    assert svg.count('class="district"') == len(CITY.districts)
    assert svg.count('class="camera"') == len(CITY.cameras) and svg.count('class="station"') == len(CITY.stations)
    songdo = map_svg(CITY, {"songdo"})
    assert "yeongjong-skyway" not in songdo and "songdo-g-tower" in songdo


def test_the_residents_page_has_weather_advice_and_counts_but_no_camera_or_position():
    page = residents_page(CITY, "songdo", WEATHER, {"intrusion": 2, "fire": 1})
    assert "Yellow dust: very bad" in page and "160.0 µg/m³" in page and "<th>intrusion</th><td>2</td>" in page
    for camera in CITY.cameras:
        assert camera.id not in page and f"{camera.lat}" not in page and f"{camera.lon}" not in page
    assert dust_advice(20.0)[0] == "good" and dust_advice(None)[0] == "unknown"


def test_events_are_scoped_by_token_and_a_page_that_comes_back_gets_what_it_missed():
    async def scenario() -> None:
        hub = EventHub()
        server = ScreenServer(CITY, hub)
        async with TestClient(TestServer(server.app)) as client:
            assert (await client.get("/events")).status == 401
            await hub.publish("incident", "songdo", {"incident_id": "a"})
            await hub.publish("incident", "cheongna", {"incident_id": "b"})
            await hub.publish("health", "", {"rows_per_s": 10})
            songdo = await client.get("/events", headers={"Authorization": "Bearer songdo-demo-token"})
            text = await read_events(songdo, 2)
            assert '"incident_id":"a"' in text and '"rows_per_s":10' in text and '"b"' not in text
            # Back after event 1: only what came later (and it may see), then the live ones.
            again = await client.get("/events?token=ioc-demo-token", headers={"Last-Event-ID": f"{hub.epoch}:1"})
            await hub.publish("weather", "yeongjong", {"pm10": 90.0})
            text = await read_events(again, 3)
            assert f"id: {hub.epoch}:1\n" not in text and f"id: {hub.epoch}:2\n" in text and "event: weather" in text
            # A page that saw another server (restarted: another epoch) gets everything kept.
            other = await client.get("/events?token=ioc-demo-token", headers={"Last-Event-ID": "0123abcd:3"})
            assert f"id: {hub.epoch}:1\n" in await read_events(other, 4)
            page = await (await client.get("/?token=songdo-demo-token")).text()
            assert 'id="weather-songdo-pm10"' in page and "weather-cheongna" not in page and "EventSource" in page
            # The pipeline's health: only from the job's driver (the key), then to every operator.
            assert (await client.post("/api/health", json={"rows_per_s": {}})).status == 403
            keyed = ScreenServer(CITY, hub, "k3y")
            async with TestClient(TestServer(keyed.app)) as driver:
                posted = await driver.post("/api/health", json={"backpressure_s": 1.5}, headers={"X-Citystream-Key": "k3y"})
                assert posted.status == 204 and hub.events[-1].kind == "health"
                assert hub.events[-1].data == {"backpressure_s": 1.5} and hub.events[-1].district == ""
            residents = await client.get("/residents/songdo")
            assert residents.status == 200 and (await client.get("/residents/atlantis")).status == 404

    asyncio.run(scenario())


async def read_events(response, count: int) -> str:
    text = ""
    while text.count("\n\n") < count + 1:  # the retry line, then the events
        text += (await asyncio.wait_for(response.content.readany(), 5)).decode()
    response.close()
    return text


def test_the_screen_keeps_the_latest_weather_and_counts_and_serves_them():
    import dataclasses
    import json
    import urllib.request

    from actors.web.screen import Screen

    city = dataclasses.replace(CITY, screen=dataclasses.replace(CITY.screen, port=0))
    sink = Screen(city)
    sink.open(0, 1)
    try:
        sink.publish("weather", "songdo", {"station": "s", "values": WEATHER})
        sink.publish("counts", "songdo", {"kind": "fire", "count": 3})
        sink.publish("incident", "songdo", {"incident_id": "x", "severity": 4})
        with urllib.request.urlopen(f"http://{sink.address}/api/residents/songdo", timeout=5) as response:
            data = json.loads(response.read())
        assert data == {"weather": WEATHER, "incidents_24h": {"fire": 3}}
        with urllib.request.urlopen(f"http://{sink.address}/residents/songdo", timeout=5) as response:
            page = response.read().decode()
        assert "Yellow dust: very bad" in page and "<th>fire</th><td>3</td>" in page
        assert sink.result()["published"] == {"weather": 1, "counts": 1, "incident": 1}
    finally:
        sink.close()
