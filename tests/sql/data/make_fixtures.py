"""Writes the input fixtures of the SQL tests (detections, weather and the Nexmark person,
auction and bid tables) as small CSV files, from a fixed seed.

Run ``.venv/bin/python tests/sql/data/make_fixtures.py`` after changing it; the CSV files are
committed, and the golden outputs (``tests/sql/queries/*.expected.csv``) depend on them.

What the data holds on purpose: a few rows out of order (behind the newest row before them by
less than the watermark delay the queries declare, so none is late), a few NULLs in columns that are never keys, rows exactly on
window boundaries, and a district whose weather starts late (an inner temporal join drops its
first detections).
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20260501
HERE = Path(__file__).resolve().parent
START = datetime(2026, 5, 1, 9, 0, 0, tzinfo=UTC)
# Rows are moved out of order by less than this (the queries declare a 2 s watermark delay
# for the city tables and 1 s for Nexmark's).
MAX_DISORDER_MS = {"city": 1500, "nexmark": 800}

DISTRICTS = ("songdo", "yeongjong", "cheongna")
CAMERAS = {district: [f"cam-{district[:2]}-{i:02d}" for i in (1, 2, 3)] for district in DISTRICTS}
LABELS = ("person", "vehicle", "fire", "smoke", "collision")
LABEL_WEIGHTS = (40, 34, 8, 11, 7)
ZONES = ("road", "crosswalk", "park", "school", "industrial")
STATIONS = {"songdo": ("SD-1", "SD-2"), "yeongjong": ("YJ-1", "YJ-2"), "cheongna": ("CN-1", "CN-2")}
STATES = ("OR", "ID", "CA", "WA", "AZ", "NV")
CITIES = ("Portland", "Boise", "San Francisco", "Seattle", "Phoenix", "Reno", "Bend", "Eugene")
FIRST_NAMES = ("Ana", "Bo", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")
LAST_NAMES = ("Kim", "Lee", "Park", "Smith", "Jones", "Walton", "Shultz", "Abrams")
CHANNELS = ("Google", "Facebook", "Baidu", "Apple")


def iso_z(ms: int) -> str:
    """2026-05-01T09:00:01.250Z"""
    return (START + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_space(ms: int) -> str:
    """2026-05-01 09:00:01.250"""
    return (START + timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def disorder(rows: list[dict], rng: random.Random, count: int, max_ms: int) -> list[dict]:
    """Rows in arrival order: by time, except ``count`` of them that arrive late, after rows
    up to ``max_ms`` newer than they are (so across batches, but within the watermark delay)."""
    delays = dict.fromkeys(rng.sample(range(len(rows)), count), 0)
    for i in delays:
        delays[i] = rng.randrange(max_ms // 3, max_ms)
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["_ms"] + delays.get(i, 0), i))
    arrived = [rows[i] for i in order]
    newest = arrived[0]["_ms"]
    for row in arrived:
        assert newest - row["_ms"] < max_ms, "a row behind by the watermark delay or more would be late"
        newest = max(newest, row["_ms"])
    return arrived


def with_nulls(rows: list[dict], rng: random.Random, column: str, count: int) -> None:
    for row in rng.sample(rows, count):
        row[column] = None


def detections(rng: random.Random) -> list[dict]:
    rows = []
    times = sorted(rng.randrange(0, 120_000) for _ in range(236))
    times += [10_000, 20_000, 60_000, 90_000]  # exactly on window boundaries
    next_track = dict.fromkeys([c for cams in CAMERAS.values() for c in cams], 100)
    for ms in times:
        district = rng.choice(DISTRICTS)
        camera = rng.choice(CAMERAS[district])
        next_track[camera] += rng.choice((0, 1, 1, 2))
        zone = rng.choice(ZONES)
        if rng.random() < 0.05:
            zone = f" {zone} "  # padded text, for TRIM
        rows.append(
            {
                "_ms": ms,
                "camera": camera,
                "district": district,
                "track_id": next_track[camera],
                "label": rng.choices(LABELS, LABEL_WEIGHTS)[0],
                "confidence": round(rng.uniform(0.3, 0.99), 3),
                "zone_kind": zone,
            }
        )
    with_nulls(rows, rng, "confidence", 5)
    with_nulls(rows, rng, "zone_kind", 5)
    rows = disorder(rows, rng, 12, MAX_DISORDER_MS["city"])
    for row in rows:
        row["ts"] = iso_z(row["_ms"])
    return rows


def weather(rng: random.Random) -> list[dict]:
    rows = []
    for district, stations in STATIONS.items():
        # Cheongna's stations start 20 s late: its first detections have no weather before them.
        first = 20_000 if district == "cheongna" else -8_000
        for offset, station in zip((0, 5_000), stations, strict=True):
            for ms in range(first + offset, 125_000, 10_000):
                rows.append(
                    {
                        "_ms": ms + rng.randrange(0, 400),  # unique per district: the stations are 5 s apart
                        "station": station,
                        "district": district,
                        "pm10": round(rng.uniform(15, 185), 1),
                        "wind_speed": round(rng.uniform(0, 12), 2),
                        "precipitation": round(rng.choice((0.0, 0.0, rng.uniform(0, 6))), 2),
                        "visibility": rng.randrange(400, 10_000, 50),
                        "humidity": rng.randrange(30, 96),
                    }
                )
    with_nulls(rows, rng, "precipitation", 4)
    with_nulls(rows, rng, "visibility", 3)
    rows = disorder(rows, rng, 6, MAX_DISORDER_MS["city"])
    for row in rows:
        row["ts"] = iso_space(row["_ms"])
    return rows


def persons(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(30):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        rows.append(
            {
                "_ms": i * 900 + rng.randrange(0, 500),
                "id": 1000 + i,
                "name": f"{first} {last}",
                "emailAddress": f"{first.lower()}.{last.lower()}{i}@nexmark.example",
                "creditCard": " ".join(f"{rng.randrange(10_000):04d}" for _ in range(4)),
                "city": rng.choice(CITIES),
                "state": rng.choice(STATES),
                "extra": rng.choice(("basic", "vip", "new")),
            }
        )
    with_nulls(rows, rng, "extra", 4)
    rows = disorder(rows, rng, 4, MAX_DISORDER_MS["nexmark"])
    for row in rows:
        row["dateTime"] = iso_space(row["_ms"])
    return rows


def auctions(rng: random.Random, people: list[dict]) -> list[dict]:
    rows = []
    for i in range(60):
        ms = 2_000 + i * 950 + rng.randrange(0, 600)
        initial = rng.randrange(1, 500)
        rows.append(
            {
                "_ms": ms,
                "id": 1000 + i,
                "itemName": f"item-{rng.choice(('lamp', 'bike', 'book', 'desk', 'kite'))}-{i}",
                "description": rng.choice(("good", "like new", "used", "vintage")),
                "initialBid": initial,
                "reserve": initial + rng.randrange(0, 1_000),
                "expires": ms + rng.randrange(10_000, 40_000),
                "seller": rng.choice(people)["id"],
                "category": rng.randrange(10, 15),
                "extra": rng.choice(("none", "reserve-met")),
            }
        )
    with_nulls(rows, rng, "extra", 4)
    rows = disorder(rows, rng, 4, MAX_DISORDER_MS["nexmark"])
    for row in rows:
        row["dateTime"] = iso_space(row["_ms"])
        row["expires"] = iso_space(row["expires"])
    return rows


def bids(rng: random.Random, people: list[dict], lots: list[dict]) -> list[dict]:
    rows = []
    hot = [lot["id"] for lot in rng.sample(lots, 6)]
    for _ in range(280):
        ms = rng.randrange(3_000, 75_000)
        open_lots = [lot["id"] for lot in lots if lot["_ms"] <= ms]
        auction = rng.choice([h for h in hot if h in open_lots] or open_lots) if rng.random() < 0.4 else rng.choice(open_lots)
        rows.append(
            {
                "_ms": ms,
                "auction": auction,
                "bidder": rng.choice(people)["id"],
                "price": rng.randrange(100, 10_000),
                "channel": rng.choice(CHANNELS),
                "url": f"https://www.nexmark.com/{rng.choice(('a', 'b', 'c'))}/item.htm?query=1&channel_id={rng.randrange(100)}",
                "extra": rng.choice(("manual", "auto", "retry")),
            }
        )
    with_nulls(rows, rng, "extra", 6)
    rows = disorder(rows, rng, 14, MAX_DISORDER_MS["nexmark"])
    for row in rows:
        row["dateTime"] = iso_space(row["_ms"])
    return rows


def write(name: str, rows: list[dict], columns: list[str]) -> None:
    with (HERE / name).open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in columns])


def main() -> None:
    rng = random.Random(SEED)
    write(
        "detections.csv",
        detections(rng),
        ["ts", "camera", "district", "track_id", "label", "confidence", "zone_kind"],
    )
    write(
        "weather.csv",
        weather(rng),
        ["ts", "station", "district", "pm10", "wind_speed", "precipitation", "visibility", "humidity"],
    )
    people = persons(rng)
    write("persons.csv", people, ["id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"])
    lots = auctions(rng, people)
    write(
        "auctions.csv",
        lots,
        ["id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller", "category", "extra"],
    )
    write("bids.csv", bids(rng, people, lots), ["auction", "bidder", "price", "channel", "url", "dateTime", "extra"])


if __name__ == "__main__":
    main()
