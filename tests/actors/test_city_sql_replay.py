"""Checkpoints of the city's SQL tables: a ``'connector' = 'city'`` table restored from a snapshot
returns, with its declared columns, the batches its feed goes on to return.

Detections are compared without ``ingest_time`` (the wall clock when a batch was built); the
tables here do not declare it anyway.
"""

import copy

import pytest

from actors.city_sql import _Declared, city_connectors
from actors.simulation import CameraFeed, WeatherFeed
from actors.topology import load_city
from engine.sources import EndOfInput
from engine.state import roundtrip
from operators.sql import compile_sql

CITY = load_city()
TABLES = {
    "detections": "ts TIMESTAMP(3), camera STRING, track_id BIGINT, label STRING, confidence DOUBLE, frame_x DOUBLE",
    "weather": "ts TIMESTAMP(3), station STRING, pm10 DOUBLE, wind_speed DOUBLE",
}


def declared_source(stream):
    text = (
        f"CREATE TABLE t ({TABLES[stream]}, WATERMARK FOR ts AS ts - INTERVAL '0.5' SECOND) "
        f"WITH ('connector' = 'city', 'stream' = '{stream}');\n"
        "SELECT * FROM t;"
    )
    job = compile_sql(text, connectors=city_connectors(CITY, duration_s=120.0))
    (source,) = [node.source for node in job.flow.nodes if node.source is not None]
    return source


@pytest.mark.parametrize(("stream", "feed", "partitions"), [("detections", CameraFeed, 3), ("weather", WeatherFeed, 4)])
def test_a_restored_city_table_returns_what_followed_the_snapshot(stream, feed, partitions):
    unopened = declared_source(stream)
    assert isinstance(unopened, _Declared) and isinstance(unopened.source, feed)
    assert unopened.replayable
    original = copy.copy(unopened)
    original.open(1, partitions)
    for _ in range(5):
        original.poll()
    fresh = copy.copy(unopened)
    fresh.open(1, partitions)
    fresh.restore(roundtrip(original.snapshot()))
    polled = 0
    while True:
        batch, again = original.poll(), fresh.poll()
        if isinstance(batch, EndOfInput):
            assert isinstance(again, EndOfInput)
            break
        assert batch.schema.names == again.schema.names == [c.split()[0] for c in TABLES[stream].split(", ")]
        assert batch.equals(again), polled
        polled += 1
    assert polled == {"detections": 600, "weather": 12}[stream] - 5
