"""Checkpoints of the Nexmark source: a NexmarkSource (and a SQL table declaring some of its
columns) restored from a snapshot returns the batches that followed it."""

import copy

import pyarrow as pa
import pytest

from benchmarks.nexmark.connector import _DeclaredColumns, nexmark_connectors
from benchmarks.nexmark.generator import KINDS, NexmarkConfig, NexmarkSource
from engine.sources import EndOfInput
from engine.state import StateError, roundtrip
from operators.sql import compile_sql

CONFIG = NexmarkConfig(events=3000, batch_size=200)  # 15 blocks; persons in only some of them


def rest(source):
    batches = []
    while not isinstance(batch := source.poll(), EndOfInput):
        batches.append(batch)
    return batches


def check_restores(unopened, partitions):
    """For every partition and every place in it, a fresh copy restored there returns the rest."""
    assert unopened.replayable
    for partition in range(partitions):
        whole = copy.copy(unopened)
        whole.open(partition, partitions)
        expected = rest(whole)
        assert expected
        for k in range(len(expected) + 1):
            original = copy.copy(unopened)
            original.open(partition, partitions)
            for _ in range(k):
                original.poll()
            fresh = copy.copy(unopened)
            fresh.open(partition, partitions)
            fresh.restore(roundtrip(original.snapshot()))
            restored = rest(fresh)
            assert len(restored) == len(expected) - k
            assert all(a.equals(b) for a, b in zip(restored, expected[k:], strict=True)), (partition, k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("partitions", [1, 3])
def test_a_restored_nexmark_source_returns_what_followed_the_snapshot(kind, partitions):
    check_restores(NexmarkSource(kind, CONFIG), partitions)


def test_an_endless_nexmark_source_restores_mid_stream():
    source = NexmarkSource("bid", NexmarkConfig(events=None, batch_size=100))
    source.open(1, 2)
    for _ in range(5):
        source.poll()
    fresh = NexmarkSource("bid", NexmarkConfig(events=None, batch_size=100))
    fresh.open(1, 2)
    fresh.restore(roundtrip(source.snapshot()))
    for _ in range(5):
        batch = fresh.poll()
        assert isinstance(batch, pa.RecordBatch) and batch.equals(source.poll())


def test_a_nexmark_source_refuses_a_checkpoint_of_another_partition():
    source = NexmarkSource("bid", CONFIG)
    source.open(2, 3)
    source.poll()
    other = NexmarkSource("bid", CONFIG)
    other.open(0, 3)
    with pytest.raises(StateError, match="partition 0 of 3"):
        other.restore(roundtrip(source.snapshot()))


def test_a_table_declaring_some_columns_restores_through_the_generator():
    text = (
        "CREATE TABLE bid (dateTime TIMESTAMP(3), price DOUBLE, AUCTION BIGINT, WATERMARK FOR dateTime AS dateTime) "
        "WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events' = '3000', 'batch.size' = '200');\n"
        "SELECT * FROM bid;"
    )
    job = compile_sql(text, connectors=nexmark_connectors())
    (declared,) = [node.source for node in job.flow.nodes if node.source is not None]
    assert isinstance(declared, _DeclaredColumns)
    assert declared.schema.names == ["dateTime", "price", "AUCTION"] and declared.schema.field("price").type == pa.float64()
    check_restores(declared, 2)


def test_tasks_of_a_table_declaring_some_columns_read_their_own_partitions():
    """Each task copies the source: the generator inside is copied with it (it was shared, and
    two tasks read one partition between them)."""
    text = (
        "CREATE TABLE bid (dateTime TIMESTAMP(3), price DOUBLE, WATERMARK FOR dateTime AS dateTime) "
        "WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events' = '3000', 'batch.size' = '200');\n"
        "SELECT price FROM bid;"
    )
    table = compile_sql(text, connectors=nexmark_connectors(), parallelism=2).run().table()
    assert table.num_rows == 2760  # 46 bids in every 50 events
