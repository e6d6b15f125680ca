"""In a real browser (Debian's headless Chromium, driven by Selenium): the operations page of
the city job running on Ray shows incidents as they come and the weather changing; a
screenshot is kept in test-artifacts/. The residents' page, served by the same job, shows no
camera id or position."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from actors.city import city_flow
from actors.topology import load_city
from engine import ChannelOptions, RayExecutor

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(DRIVER)),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def test_the_operations_page_shows_incidents_and_changing_weather_live(ray_instance, tmp_path):
    city = load_city(
        overrides=[
            *(f"gateways.{i}.port=0" for i in range(3)),
            f"dispatch.log_dir={tmp_path}",
            "screen.port=0",
            "simulation.batch_ms=1000",
        ]
    )
    job = RayExecutor(channels=ChannelOptions(linger_ms=2)).submit(city_flow(city, mode="replay", duration_s=3600, seed=7))
    driver = None
    try:
        address_file = tmp_path / "screen.address"
        deadline = time.monotonic() + 120
        while not address_file.exists():
            assert time.monotonic() < deadline, "the screen did not start"
            time.sleep(0.2)
        address = address_file.read_text()
        driver = browser()
        driver.get(f"http://{address}/?token=ioc-demo-token")

        def until(condition, what, timeout=120.0):
            deadline = time.monotonic() + timeout
            while not (value := condition()):
                assert time.monotonic() < deadline, f"the page never showed {what}"
                time.sleep(0.25)
            return value

        until(lambda: driver.execute_script("return document.querySelectorAll('#incidents li').length") > 0, "an incident")
        updates = until(
            lambda: int(driver.execute_script("return document.getElementById('weather-songdo-pm10').dataset.updates || 0")) >= 2,
            "the weather change",
        )
        assert updates
        value = driver.find_element("id", "weather-songdo-pm10").text
        assert value.replace(".", "", 1).isdigit(), value
        assert driver.find_element("id", "status").text == "live"
        first = driver.find_element("css selector", "#incidents li")
        first.click()
        assert driver.find_element("id", "detail").text  # the evidence and the weather of that moment
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "operations-screen.png"))
        # The residents' page and its data: weather and counts, no camera, no position.
        with urllib.request.urlopen(f"http://{address}/residents/songdo", timeout=10) as response:
            page = response.read().decode()
        with urllib.request.urlopen(f"http://{address}/api/residents/songdo", timeout=10) as response:
            data = response.read().decode()
        assert "Weather now" in page and json.loads(data)["weather"] is not None
        for camera in city.cameras:
            for text in (page, data):
                assert camera.id not in text and str(camera.lat) not in text and str(camera.lon) not in text
    finally:
        if driver is not None:
            driver.quit()
        job.cancel()
