"""The key hash that decides hash partitions: stable across batches, slices and processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.partitioning import hash_keys, partition_of, split_by_hash

ROOT = Path(__file__).resolve().parents[2]


def hashes_by_value(batch, keys):
    """{key tuple: hash}, checking that equal keys within the batch hash equally."""
    result = {}
    for row, h in zip(batch.select(keys).to_pylist(), hash_keys(batch, keys).tolist(), strict=True):
        key = tuple(row[k] for k in keys)
        assert result.setdefault(key, h) == h, f"{key} has two hashes in one batch"
    return result


def test_same_string_same_hash_in_any_batch():
    first = pa.record_batch({"k": ["north", "south", "east", "north"]})
    second = pa.record_batch({"k": ["west", "east", "south", "a much longer district name", "north"]})
    h1, h2 = hashes_by_value(first, ["k"]), hashes_by_value(second, ["k"])
    for key in ("north", "south", "east"):
        assert h1[(key,)] == h2[(key,)]
    assert len(set(h2.values())) == len(h2)  # distinct keys, distinct hashes


def test_hash_does_not_depend_on_slice_offset_or_chunking():
    batch = pa.record_batch({"k": ["a", "bb", "ccc", "dddd", "bb", "a"], "n": [1, 2, 3, 4, 2, 1]})
    full = hash_keys(batch, ["k", "n"])
    sliced = batch.slice(2, 3)
    assert sliced.column(0).offset == 2
    assert hash_keys(sliced, ["k", "n"]).tolist() == full[2:5].tolist()
    chunked = pa.Table.from_batches([batch.slice(0, 3), batch.slice(3)])
    assert chunked.column("k").num_chunks == 2
    assert hash_keys(chunked, ["k", "n"]).tolist() == full.tolist()


def test_string_encodings_hash_alike():
    values = ["x", "yy", "", "x"]
    plain = hash_keys(pa.record_batch({"k": pa.array(values, pa.string())}), ["k"])
    large = hash_keys(pa.record_batch({"k": pa.array(values, pa.large_string())}), ["k"])
    dictionary = hash_keys(pa.record_batch({"k": pa.array(values).dictionary_encode()}), ["k"])
    assert plain.tolist() == large.tolist() == dictionary.tolist()
    assert plain[0] == plain[3]
    assert len({plain[0], plain[1], plain[2]}) == 3


def test_integers_hash_by_value_whatever_their_width():
    h64 = hash_keys(pa.record_batch({"k": pa.array([1, 2, 3, 1], pa.int64())}), ["k"])
    h32 = hash_keys(pa.record_batch({"k": pa.array([3, 1], pa.int32())}), ["k"])
    assert h64[0] == h64[3] == h32[1]
    assert h64[2] == h32[0]
    assert len(set(h64.tolist())) == 3


def test_nulls_hash_alike_and_apart_from_zero_and_empty():
    strings = pa.record_batch({"k": pa.array([None, "", "a", None])})
    ints = pa.record_batch({"k": pa.array([0, None, 5], pa.int64())})
    hs, hi = hash_keys(strings, ["k"]), hash_keys(ints, ["k"])
    assert hs[0] == hs[3] == hi[1]  # a null key is one key
    assert hs[0] != hs[1]  # null is not ""
    assert hi[1] != hi[0]  # null is not 0
    all_null = hash_keys(pa.record_batch({"k": pa.array([None, None], pa.string())}), ["k"])
    assert all_null[0] == all_null[1] == hs[0]


def test_multi_column_keys():
    batch = pa.record_batch({"a": ["x", "x", "y", "y", "x"], "b": [1, 2, 1, 2, 1]})
    h = hash_keys(batch, ["a", "b"])
    assert h[0] == h[4]
    assert len({h[0], h[1], h[2], h[3]}) == 4
    other = pa.record_batch({"a": ["y", "x"], "b": [2, 1]})
    assert hash_keys(other, ["a", "b"]).tolist() == [h[3], h[0]]
    # The order of the key columns matters, and two columns are not the first one alone.
    assert hash_keys(batch, ["b", "a"]).tolist() != h.tolist()
    assert hash_keys(batch, ["a"]).tolist() != h.tolist()
    with_null = pa.record_batch({"a": ["x", None, None], "b": [None, 1, 1]})
    hn = hash_keys(with_null, ["a", "b"])
    assert hn[1] == hn[2] and hn[0] != hn[1]


def test_other_types_hash():
    batch = pa.record_batch(
        {
            "f": pa.array([0.5, 1.5, 0.5]),
            "t": pa.array([True, False, True]),
            "ts": pa.array([1000, 2000, 1000], pa.timestamp("ms", "UTC")),
            "bin": pa.array([b"ab", b"c", b"ab"]),
        }
    )
    for key in ("f", "t", "ts", "bin"):
        h = hash_keys(batch, [key])
        assert h[0] == h[2] and h[0] != h[1], key


HASH_SCRIPT = """
import json, pyarrow as pa
from engine.partitioning import hash_keys
batch = pa.record_batch({"s": ["north", "", None, "Zürich", "north"], "n": [1, -7, 2**40, None, 1]})
print(json.dumps({"s": [str(h) for h in hash_keys(batch, ["s"])],
                  "n": [str(h) for h in hash_keys(batch, ["n"])],
                  "sn": [str(h) for h in hash_keys(batch, ["s", "n"])]}))
"""


def test_hashes_are_the_same_in_another_process():
    # sys.executable is the venv's python when the tests run as `.venv/bin/python -m pytest`.
    namespace = {}
    exec(HASH_SCRIPT.replace("print(", "result = ("), namespace)  # the same code, in this process
    ours = json.loads(namespace["result"])
    theirs = []
    for seed in ("1", "2"):  # Python's own str hash differs with the seed; ours must not
        env = dict(os.environ, PYTHONHASHSEED=seed)
        completed = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
        )
        theirs.append(json.loads(completed.stdout))
    assert theirs[0] == theirs[1] == ours


def test_split_by_hash_keeps_every_row_and_groups_keys():
    keys = [f"k{i % 37}" for i in range(500)]
    batch = pa.record_batch({"k": keys, "i": list(range(500))})
    parts = split_by_hash(batch, ("k",), 4)
    assert len(parts) == 4
    assert sum(p.num_rows for p in parts) == 500
    assert sorted(i for p in parts for i in p.column("i").to_pylist()) == list(range(500))
    owners = {}
    for index, part in enumerate(parts):
        for key in part.column("k").to_pylist():
            assert owners.setdefault(key, index) == index, f"{key} in two partitions"
    assert len(owners) == 37
    assert all(p.num_rows for p in parts)  # 37 keys over 4 parts: none empty
    # Each part is where partition_of says, and a later batch sends the same key to the same part.
    later = pa.record_batch({"k": ["k5", "k36", "k0"], "i": [0, 0, 0]})
    targets = partition_of(later, ("k",), 4).tolist()
    assert targets == [owners["k5"], owners["k36"], owners["k0"]]


def test_split_by_hash_keeps_row_order_within_a_part():
    batch = pa.record_batch({"k": ["a", "b", "a", "c", "a"], "i": [0, 1, 2, 3, 4]})
    for part in split_by_hash(batch, ("k",), 3):
        assert part.column("i").to_pylist() == sorted(part.column("i").to_pylist())


def test_split_by_hash_single_part_and_empty_batch():
    batch = pa.record_batch({"k": ["a", "b"]})
    assert split_by_hash(batch, ("k",), 1) == [batch]
    empty = pa.record_batch({"k": pa.array([], pa.string())})
    parts = split_by_hash(empty, ("k",), 3)
    assert [p.num_rows for p in parts] == [0, 0, 0]


def test_partition_of_is_within_range():
    batch = pa.record_batch({"n": np.arange(1000)})
    targets = partition_of(batch, ("n",), 7)
    assert targets.min() >= 0 and targets.max() < 7
    assert len(set(targets.tolist())) == 7
