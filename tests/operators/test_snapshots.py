"""Checkpoints of every stateful operator: an operator restored from its snapshot (through the
state codec, as a checkpoint stores it) continues exactly as the original would have.

Each case drives an operator through generated batches and watermarks (several keys and
windows, rows late by more than the out-of-orderness, sessions and windows spanning the cut).
At a cut the operator is snapshotted, the state goes through ``roundtrip`` and a fresh instance
(built the same way, ``open`` called) restored from it takes the rest of the input. What the
original emitted before the cut plus what the restored one emitted after it must equal the
output of one uninterrupted instance: every output (main and side outputs, as multisets of
rows), the watermarks it forwarded, and a sink's result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from engine import Dataflow, GeneratorSource
from engine.expr import col, lit
from engine.operator import DEAD_LETTER, LATE, MAIN, Collector, Operator, Sink
from engine.sinks import CollectSink, CountSink
from engine.sources import EventTimeAssigner
from engine.state import roundtrip
from engine.timeutil import EVENT_TIME_TYPE, MAX_WATERMARK
from operators import Hopping, Session, Tumbling, agg
from operators.group import UpdatingAggregate, updating_schema
from operators.join.interval import LATE_RIGHT
from operators.window.aggregates import TwoPhaseAggregate

BASE = 1_700_000_000_000  # epoch ms of the first generated row
BOUND = 300  # out-of-orderness of the generated streams (ms); some rows are later than that
WINDOW_MS = 2_000  # the window of the window join's inputs
KEYS = ["a", "b", "c", None]
SEEDS = [1, 2, 3]

ROWS = pa.schema([("ts", EVENT_TIME_TYPE), ("k", pa.string()), ("v", pa.int64()), ("x", pa.float64())])
RIGHT = pa.schema([("ts", EVENT_TIME_TYPE), ("k", pa.string()), ("temp", pa.float64())])
RAW = pa.schema([("ts", pa.int64()), ("k", pa.string()), ("v", pa.int64()), ("x", pa.float64())])
WINDOWED_LEFT = pa.schema(list(ROWS) + [("window_start", EVENT_TIME_TYPE), ("window_end", EVENT_TIME_TYPE)])
WINDOWED_RIGHT = pa.schema(list(RIGHT) + [("window_start", EVENT_TIME_TYPE), ("window_end", EVENT_TIME_TYPE)])
# Every kind of partial aggregate: mergeable columns, ordered ones (first, last) and a distinct
# count (a table of its own); x is a random float, so sums only match if added in the same order.
AGGREGATES = [
    agg("count"),
    agg("sum", "v"),
    agg("mean", "x"),
    agg("min", "x"),
    agg("max", "v"),
    agg("first", "v"),
    agg("last", "x"),
    agg("count_distinct", "v"),
]

Event = tuple[str, int, Any]  # ("batch", input, RecordBatch), ("watermark", 0, ms), ("polled", 0, RecordBatch)


# ---- generated inputs -----------------------------------------------------------------------


def _rows_batch(rng: np.random.Generator, ts: np.ndarray, schema: pa.Schema) -> pa.RecordBatch:
    n = len(ts)
    columns: dict[str, pa.Array] = {
        "ts": pa.array(ts, pa.int64()).cast(schema.field("ts").type),
        "k": pa.array([KEYS[i] for i in rng.integers(0, len(KEYS), n)], pa.string()),
    }
    if "v" in schema.names:
        columns["v"] = pa.array(rng.integers(0, 8, n), pa.int64())
        columns["x"] = pa.array(rng.random(n), pa.float64())
    else:
        columns["temp"] = pa.array(rng.normal(15.0, 5.0, n), pa.float64())
    if "window_start" in schema.names:
        starts = ts // WINDOW_MS * WINDOW_MS
        columns["window_start"] = pa.array(starts, pa.int64()).cast(EVENT_TIME_TYPE)
        columns["window_end"] = pa.array(starts + WINDOW_MS, pa.int64()).cast(EVENT_TIME_TYPE)
    return pa.record_batch([columns[name] for name in schema.names], schema=schema)


def generated(seed: int, schemas: list[pa.Schema], batches: int = 36, watermarks: bool = True) -> list[Event]:
    """Batches on the inputs (one schema each) in random order, time advancing by up to 400 ms a
    batch, rows up to BOUND behind and some (15 %) far behind; after about half of the batches,
    the watermark (latest time seen - BOUND - 1) if it advanced; the end: MAX_WATERMARK."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    now, latest, watermark = BASE, BASE, None
    for _ in range(batches):
        now += int(rng.integers(0, 400))
        side = int(rng.integers(0, len(schemas)))
        size = int(rng.integers(1, 6))
        ts = now - rng.integers(0, BOUND, size)
        far = rng.random(size) < 0.15
        ts[far] -= rng.integers(BOUND, 6_000, int(far.sum()))
        events.append(("batch", side, _rows_batch(rng, ts, schemas[side])))
        latest = max(latest, int(ts.max()))
        if watermarks and rng.random() < 0.5 and (watermark is None or latest - BOUND - 1 > watermark):
            watermark = latest - BOUND - 1
            events.append(("watermark", 0, watermark))
    if watermarks:
        events.append(("watermark", 0, MAX_WATERMARK))
    return events


# ---- the operators, built as a dataflow builds them -------------------------------------------


def _source(flow: Dataflow, name: str, schema: pa.Schema) -> Any:
    return flow.source(name, GeneratorSource(schema, lambda p, n: iter(())), event_time="ts")


def window(spec: object, keyed: bool) -> Callable[[], Operator]:
    flow = Dataflow("snapshots")
    rows = _source(flow, "rows", ROWS)
    return (rows.key_by("k") if keyed else rows).window(spec, AGGREGATES).node.factory


def asof_join(tolerance: timedelta | None) -> Callable[[], Operator]:
    flow = Dataflow("snapshots")
    left, right = _source(flow, "left", ROWS), _source(flow, "right", RIGHT)
    return left.key_by("k").asof_join(right.key_by("k"), tolerance=tolerance).node.factory


def interval_join(lower: int, upper: int) -> Callable[[], Operator]:
    flow = Dataflow("snapshots")
    left, right = _source(flow, "left", ROWS), _source(flow, "right", RIGHT)
    return left.key_by("k").interval_join(right.key_by("k"), lower=lower, upper=upper).node.factory


def regular_join() -> Callable[[], Operator]:
    flow = Dataflow("snapshots")
    left, right = _source(flow, "left", ROWS), _source(flow, "right", RIGHT)
    return left.key_by("k").join(right.key_by("k"), ttl=2_000).node.factory


def window_join() -> Callable[[], Operator]:
    flow = Dataflow("snapshots")
    left, right = _source(flow, "left", WINDOWED_LEFT), _source(flow, "right", WINDOWED_RIGHT)
    return left.key_by("k").window_join(right.key_by("k"), how="full").node.factory


def updating_aggregate() -> Operator:
    aggregate = TwoPhaseAggregate("g", AGGREGATES, ROWS, "ts")
    schema = updating_schema([ROWS.field("k")], aggregate.output_fields)
    return UpdatingAggregate(["k"], aggregate, col("v_sum") < lit(30), schema)  # keys deleted past 30


def assigner_events(seed: int) -> list[Event]:
    """Raw batches (int times) for the event-time assigner, as a source task polls them: the
    watermark is taken right after each batch (no checkpoint barrier comes between the two)."""
    return [("polled", 0, batch) for _, _, batch in generated(seed, [RAW], watermarks=False)]


@dataclass(frozen=True)
class Case:
    name: str
    factory: Callable[[], Operator]
    events: Callable[[int], list[Event]]
    outputs: tuple[str, ...] = ()  # outputs that must not be empty (so that the case tests them)


def _one(*schemas: pa.Schema) -> Callable[[int], list[Event]]:
    return lambda seed: generated(seed, list(schemas))


CASES = [
    Case("tumbling", window(Tumbling(2_000), keyed=True), _one(ROWS), (MAIN, LATE)),
    Case("tumbling_late_updates", window(Tumbling(2_000, allowed_lateness=1_500), keyed=True), _one(ROWS), (MAIN, LATE)),
    Case("tumbling_global", window(Tumbling(5_000, allowed_lateness=500), keyed=False), _one(ROWS), (MAIN, LATE)),
    Case("hopping", window(Hopping(3_000, 1_000, allowed_lateness=1_000), keyed=True), _one(ROWS), (MAIN, LATE)),
    Case("hopping_global", window(Hopping(2_000, 500), keyed=False), _one(ROWS), (MAIN, LATE)),
    Case("session", window(Session(gap=700), keyed=True), _one(ROWS), (MAIN, LATE)),
    Case("session_late_updates", window(Session(gap=500, allowed_lateness=1_000), keyed=True), _one(ROWS), (MAIN, LATE)),
    Case("session_global", window(Session(gap=300), keyed=False), _one(ROWS), (MAIN, LATE)),
    Case("asof_join", asof_join(None), _one(ROWS, RIGHT), (MAIN, LATE)),
    Case("asof_join_tolerance", asof_join(timedelta(milliseconds=800)), _one(ROWS, RIGHT), (MAIN, LATE)),
    Case("interval_join", interval_join(-600, 400), _one(ROWS, RIGHT), (MAIN, LATE, LATE_RIGHT)),
    Case("interval_join_after", interval_join(100, 1_500), _one(ROWS, RIGHT), (MAIN, LATE, LATE_RIGHT)),
    Case("regular_join", regular_join(), _one(ROWS, RIGHT), (MAIN,)),
    Case("window_join", window_join(), _one(WINDOWED_LEFT, WINDOWED_RIGHT), (MAIN, LATE, LATE_RIGHT)),
    Case("updating_aggregate", updating_aggregate, _one(ROWS), (MAIN,)),
    Case("event_time_assigner", lambda: EventTimeAssigner("ts", BOUND), assigner_events, (MAIN,)),
    Case("collect_sink", lambda: CollectSink(ROWS), _one(ROWS)),
    Case("count_sink", CountSink, _one(ROWS)),
]


# ---- driving an operator, with restores -------------------------------------------------------


class Recorder:
    """What an operator emitted on each output, and the watermarks it forwarded."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[pa.RecordBatch]] = {MAIN: [], LATE: [], LATE_RIGHT: [], DEAD_LETTER: []}
        self.forwarded: list[int | None] = []
        self.collector = Collector({name: batches.append for name, batches in self.outputs.items()})


def drive(operator: Operator, events: list[Event], recorder: Recorder) -> None:
    for kind, index, value in events:
        if kind == "batch":
            operator.process_batch(value, index, recorder.collector)
        elif kind == "watermark":
            recorder.forwarded.append(operator.on_watermark(value, recorder.collector))
        else:
            assert isinstance(operator, EventTimeAssigner)
            operator.process_batch(value, index, recorder.collector)
            recorder.forwarded.append(operator.take_watermark())


def fresh(factory: Callable[[], Operator]) -> Operator:
    operator = factory()
    operator.open(0, 1)
    return operator


def replay(case: Case, events: list[Event], cuts: list[int] = (), encode_late: bool = False) -> Any:  # type: ignore[assignment]
    """Drives a fresh operator through ``events``, replacing it at each cut by a fresh one
    restored from its snapshot. ``encode_late``: the original goes on to the end (its output
    dropped) before its snapshot is encoded, as if the checkpoint were written later."""
    recorder = Recorder()
    operator = fresh(case.factory)
    position = 0
    for cut in sorted(cuts):
        drive(operator, events[position:cut], recorder)
        state = operator.snapshot()
        if encode_late:
            drive(operator, events[cut:], Recorder())
        operator = fresh(case.factory)
        operator.restore(roundtrip(state))
        position = cut
    drive(operator, events[position:], recorder)
    return canonical(recorder, operator)


def _row_tuples(batches: list[pa.RecordBatch] | pa.Table) -> list[tuple]:
    rows = [tuple(row.values()) for batch in batches for row in batch.to_pylist()]
    return sorted(rows, key=repr)


def canonical(recorder: Recorder, operator: Operator) -> dict[str, Any]:
    """Each output as a sorted list of rows, the forwarded watermarks in order, a sink's result."""
    result: dict[str, Any] = {name: _row_tuples(batches) for name, batches in recorder.outputs.items()}
    result["forwarded"] = recorder.forwarded
    if isinstance(operator, Sink):
        kept = operator.result()
        result["result"] = _row_tuples(kept.to_batches()) if isinstance(kept, pa.Table) else kept
    return result


# ---- the properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_restored_operator_continues_as_the_original_at_any_cut(case: Case, seed: int) -> None:
    """One restore per run, at a third of the positions (offset by the seed); the test below
    restores before every event in one run, so every position is covered there."""
    events = case.events(seed)
    expected = replay(case, events)
    for output in case.outputs:
        assert expected[output], f"the input of {case.name} gives nothing on '{output}': it tests too little"
    for cut in [*range(seed % 3, len(events), 3), len(events)]:
        assert replay(case, events, [cut]) == expected, f"restored before event {cut} of {len(events)}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_restored_before_every_event(case: Case) -> None:
    events = case.events(SEEDS[0])
    assert replay(case, events, list(range(len(events)))) == replay(case, events)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_snapshot_is_not_changed_by_what_the_operator_does_after_it(case: Case) -> None:
    events = case.events(SEEDS[1])
    expected = replay(case, events)
    for cut in range(1, len(events), 3):
        assert replay(case, events, [cut], encode_late=True) == expected, f"snapshot before event {cut}"


def test_a_window_snapshot_keeps_its_partials_apart_and_readable() -> None:
    window_operator = fresh(window(Tumbling(2_000, allowed_lateness=1_500), keyed=True))
    events = generated(SEEDS[0], [ROWS])
    drive(window_operator, events[:20], Recorder())
    state = roundtrip(window_operator.snapshot())
    assert set(state) == {"watermark", "bins", "partials"}
    parts = state["partials"]
    assert len(state["bins"]) == len(parts["rows"]) > 1
    assert parts["main"].num_rows == int(parts["rows"][:, 0].sum())
    assert [t.num_rows for t in parts["distinct"]] == parts["rows"][:, 1:].sum(axis=0).tolist()
