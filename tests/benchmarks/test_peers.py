"""benchmarks/peers: deterministic data, citystream's workloads on hand-checked inputs, the
order-independent checksum and the reading of every engine's output format (no peer venv needed)."""

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from benchmarks.peers.run import Run, ratios, tree_rss, write_report
from benchmarks.peers.workloads import (
    DataSpec,
    canonical,
    checksum,
    citystream_flow,
    events_of,
    input_tables,
    read_output,
    table_digest,
    table_sources,
    write_data,
)
from engine import InlineExecutor

TINY = DataSpec(nexmark_events=3_000, detections=2_000, seed=5)
BASE = 1_767_225_600_000  # a multiple of 10 s


def run_workload(workload: str, tables: dict[str, pa.Table]) -> list[tuple]:
    flow, out = citystream_flow(workload, table_sources(tables, batch_size=2))
    sink = out.collect("out")
    table = canonical(workload, InlineExecutor().run(flow).table(sink))
    return sorted(tuple(row.values()) for row in table.to_pylist())


def bids(rows: list[tuple[int, int, int]]) -> pa.Table:
    """Bids (auction, price, ms after BASE) with the generator's other columns filled in."""
    n = len(rows)
    return pa.table(
        {
            "auction": pa.array([r[0] for r in rows], pa.int64()),
            "bidder": pa.array(range(n), pa.int64()),
            "price": pa.array([r[1] for r in rows], pa.int64()),
            "channel": ["c"] * n,
            "url": ["u"] * n,
            "dateTime": pa.array([BASE + r[2] for r in rows], pa.int64()).cast(pa.timestamp("ms", "UTC")),
            "extra": ["x"] * n,
        }
    )


def test_generated_data_is_deterministic_and_follows_the_seed(tmp_path: Path) -> None:
    first, second = input_tables(TINY), input_tables(TINY)
    assert {k: table_digest(t) for k, t in first.items()} == {k: table_digest(t) for k, t in second.items()}
    other = input_tables(DataSpec(TINY.nexmark_events, TINY.detections, seed=6))
    assert table_digest(other["bids"]) != table_digest(first["bids"])
    assert table_digest(other["detections"]) != table_digest(first["detections"])
    # One station per district, covering the detections' whole span from their first time.
    weather = first["weather"]
    assert len(set(weather.column("station").to_pylist())) == 3
    assert weather.column("ts")[0] == first["detections"].column("ts")[0]

    files = write_data(TINY, tmp_path / "data")
    manifest = files.manifest()
    assert manifest["rows"] == {k: t.num_rows for k, t in first.items()}
    assert manifest["digests"]["bids"] == table_digest(first["bids"])
    assert events_of("fusion", manifest["rows"]) == first["detections"].num_rows + first["weather"].num_rows
    # The CSV copy (what PyFlink reads) has the same rows, times as epoch ms.
    csv = pacsv.read_csv(files.csv("bids"), read_options=pacsv.ReadOptions(autogenerate_column_names=True))
    assert csv.num_rows == first["bids"].num_rows
    assert csv.column(5).to_pylist()[:3] == [t.value for t in first["bids"].column("dateTime")[:3]]


def test_checksum_ignores_row_order_but_not_content() -> None:
    table = pa.table({"key": ["a", "b", "c", "a"], "n": [1, 2, 3, 1]})
    reordered = table.take([3, 2, 0, 1])
    assert checksum(reordered) == checksum(table)
    assert checksum(table)["rows"] == 4
    assert checksum(pa.table({"key": ["a", "b", "c", "a"], "n": [1, 2, 4, 1]})) != checksum(table)
    # A duplicated row counts: a set digest would miss a row emitted twice.
    assert checksum(table.take([0, 1, 2])) != checksum(table)
    # Values moved to another row are another result.
    assert checksum(pa.table({"key": ["a", "b", "c", "a"], "n": [2, 1, 3, 1]})) != checksum(table)


def test_q1_converts_prices_to_euros() -> None:
    rows = run_workload("q1", {"bids": bids([(1, 1000, 0), (2, 1, 5)])})
    assert rows == [(1, 0, 908_000, BASE, "x"), (2, 1, 908, BASE + 5, "x")]


def test_q2_keeps_every_123rd_auction() -> None:
    rows = run_workload("q2", {"bids": bids([(123, 7, 0), (124, 8, 1), (246, 9, 2), (1000, 10, 3)])})
    assert rows == [(123, 7), (246, 9)]


def test_tumbling_counts_bids_per_auction_and_10_s_window() -> None:
    data = bids([(1, 1, 0), (1, 1, 5_000), (2, 1, 9_999), (1, 1, 9_999), (1, 1, 10_000), (2, 1, 25_000)])
    assert run_workload("tumbling", {"bids": data}) == [
        (1, BASE, BASE + 10_000, 3),
        (1, BASE + 10_000, BASE + 20_000, 1),
        (2, BASE, BASE + 10_000, 1),
        (2, BASE + 20_000, BASE + 30_000, 1),
    ]


def test_hopping_puts_a_bid_in_the_five_windows_that_hold_it() -> None:
    rows = run_workload("hopping", {"bids": bids([(7, 1, 3_000), (7, 1, 3_500)])})
    starts = [BASE - 6_000, BASE - 4_000, BASE - 2_000, BASE, BASE + 2_000]
    assert rows == [(7, s, s + 10_000, 2) for s in starts]


def test_fusion_joins_the_latest_reading_at_or_before_each_detection() -> None:
    ts = pa.timestamp("ms", "UTC")
    weather = pa.table(
        {
            "ts": pa.array([BASE, BASE + 1_000, BASE + 10_000], pa.int64()).cast(ts),
            "station": ["s-a", "s-a", "s-a"],
            "district": ["a", "a", "a"],
            "pm10": [10.0, 50.0, 5.0],
        }
    )
    detections = pa.table(
        {
            # cam-1: before, at (inclusive) and after the second reading; cam-2 in a district
            # without readings (left outer: no weather); cam-3 in the next window.
            "ts": pa.array([BASE + 999, BASE + 1_000, BASE + 500, BASE + 12_000, BASE + 0], pa.int64()).cast(ts),
            "camera": ["cam-1", "cam-1", "cam-2", "cam-3", "cam-4"],
            "district": ["a", "a", "b", "a", "a"],
        }
    )
    rows = run_workload("fusion", {"detections": detections.sort_by("ts"), "weather": weather})
    assert rows == sorted(
        [
            ("cam-1", BASE, BASE + 10_000, 2, 50_000),
            ("cam-2", BASE, BASE + 10_000, 1, None),
            ("cam-3", BASE + 10_000, BASE + 20_000, 1, 5_000),
            ("cam-4", BASE, BASE + 10_000, 1, 10_000),
        ],
        key=lambda r: (r[0], r[1]),
    )


def test_outputs_of_every_engine_format_reduce_to_the_same_checksum(tmp_path: Path) -> None:
    # citystream / Bytewax: an Arrow IPC stream with timestamps or epoch ms and float prices.
    arrow = pa.table(
        {
            "auction": [1, 2],
            "bidder": [3, 4],
            "price": [0.908 * 1001, 0.908 * 7],
            "dateTime": pa.array([BASE, BASE + 1], pa.int64()).cast(pa.timestamp("ms", "UTC")),
            "extra": ["p", "q"],
        }
    )
    path = tmp_path / "out.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow)
    # PyFlink: headerless CSV part files (a DECIMAL price), some hidden while in progress.
    folder = tmp_path / "flink"
    folder.mkdir()
    (folder / "part-0").write_text(f'2,4,6.356,{BASE + 1},"q"\n')
    (folder / ".part-1.inprogress").write_text(f'1,3,908.908,{BASE},"p"\n')
    assert checksum(canonical("q1", read_output(path, "q1"))) == checksum(canonical("q1", read_output(folder, "q1")))
    windows = tmp_path / "windows"
    windows.mkdir()
    (windows / "part-0").write_text('5,"2026-01-01 00:00:00","2026-01-01 00:00:10",3\n')
    table = canonical("tumbling", read_output(windows, "tumbling"))
    assert table.to_pylist() == [{"auction": 5, "window_start": BASE, "window_end": BASE + 10_000, "count": 3}]


def test_report_gives_ratios_and_says_when_the_goal_is_missed() -> None:
    runs = [
        Run("citystream-inline", "q1", 1_000_000, total_s=1.0, run_s=0.5, rows=10, digest="d", same=True),
        Run("bytewax", "q1", 1_000_000, total_s=3.0, run_s=2.5, rows=10, digest="d", same=True),
        Run("pyflink", "q1", 1_000_000, total_s=10.0, run_s=4.0, rows=11, digest="e", same=False),
    ]
    found = ratios(runs)
    assert found["bytewax"] == {"total": pytest.approx(3.0), "run": pytest.approx(5.0)}
    meta = {
        "date": "today",
        "quick": True,
        "machine": {"cpus": 2, "cpu": "cpu", "memory_gib": 1.0, "kernel": "k", "versions": {"python": "3"}},
        "load_start": (0.1, 0.2, 0.3),
        "load_end": (0.4, 0.5, 0.6),
        "spec": {"seed": 1, "nexmark_events": 10},
        "rows": {"bids": 9, "detections": 1, "weather": 1},
        "reference": {"q1": "10 rows, d"},
    }
    text = write_report(meta, {"q1": runs})
    assert "| q1 | end to end | bytewax | 3.0x | NO |" in text
    assert "| q1 | excluding start-up | bytewax | 5.0x | yes |" in text
    assert "- pyflink: 11 rows, digest e (reference 10 rows, d)" in text


def test_tree_rss_counts_this_process() -> None:
    total, anonymous = tree_rss(os.getpid())
    assert total > anonymous > 10 * 2**20
