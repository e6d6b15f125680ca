"""Checkpoints of the engine's sources: a TableSource restored from a snapshot returns the
batches that followed it; a GeneratorSource refuses to be checkpointed."""

import copy

import pyarrow as pa
import pytest

from engine import GeneratorSource, TableSource
from engine.sources import END_OF_INPUT, EndOfInput
from engine.state import StateError, roundtrip

TABLE = pa.table({"ts": list(range(23)), "v": [f"row {i}" for i in range(23)]})  # 8 batches of 3 (the last of 2)


def batch_of(polled):
    assert isinstance(polled, pa.RecordBatch), polled
    return polled


def rest(source):
    """What the source returns from now to its end."""
    batches = []
    while not isinstance(batch := source.poll(), EndOfInput):
        batches.append(batch)
    return batches


@pytest.mark.parametrize("partitions", [1, 2, 3])
def test_a_restored_table_source_returns_what_followed_the_snapshot(partitions):
    unopened = TableSource(TABLE, batch_size=3)
    assert unopened.replayable
    for partition in range(partitions):
        whole = copy.copy(unopened)
        whole.open(partition, partitions)
        expected = rest(whole)
        assert expected, "every partition has batches"
        for k in range(len(expected) + 1):  # from the start, in the middle, at the very end
            original = copy.copy(unopened)
            original.open(partition, partitions)
            for _ in range(k):
                original.poll()
            state = roundtrip(original.snapshot())
            for fresh in (copy.copy(unopened), TableSource(TABLE, batch_size=3)):
                fresh.open(partition, partitions)
                fresh.restore(state)
                restored = rest(fresh)
                assert len(restored) == len(expected) - k
                assert all(a.equals(b) for a, b in zip(restored, expected[k:], strict=True))
            assert all(a.equals(b) for a, b in zip(rest(original), expected[k:], strict=True))


def test_a_snapshot_is_a_value_that_later_polls_do_not_change():
    source = TableSource(TABLE, batch_size=3)
    source.open(0, 1)
    source.poll()
    state = source.snapshot()
    source.poll()
    fresh = TableSource(TABLE, batch_size=3)
    fresh.open(0, 1)
    fresh.restore(state)
    assert batch_of(fresh.poll()).equals(TABLE.slice(3, 3).to_batches()[0])


def test_a_table_source_refuses_a_checkpoint_of_another_partitioning():
    source = TableSource(TABLE, batch_size=3)
    source.open(1, 2)
    source.poll()
    state = roundtrip(source.snapshot())
    other = TableSource(TABLE, batch_size=3)
    other.open(0, 2)  # another partition: its batches are not the checkpoint's
    with pytest.raises(StateError, match="partition 0 of 2"):
        other.restore(state)
    other = TableSource(TABLE, batch_size=3)
    other.open(1, 3)  # another number of partitions
    with pytest.raises(StateError, match="partition 1 of 3"):
        other.restore(state)


def test_a_generator_source_cannot_be_checkpointed():
    source = GeneratorSource(TABLE.schema, lambda p, n: iter(TABLE.to_batches()))
    assert not source.replayable
    source.open(0, 1)
    with pytest.raises(StateError, match="GeneratorSource cannot be checkpointed"):
        source.snapshot()
    with pytest.raises(StateError):
        source.restore({})
    assert batch_of(source.poll()).equals(TABLE.to_batches()[0])
    assert source.poll() is END_OF_INPUT
