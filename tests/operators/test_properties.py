"""Property tests: streaming operators equal the same computation over the whole data at once.

Every property draws a detection-like table (``ts`` epoch ms, ``district``, ``score``,
``track``), cuts it into random batches and delivers its rows out of order within a bound B
(rows are ordered by ``ts + jitter``, jitter in [0, B], so that every row is at most B ms
behind the latest row before it); the source declares ``out_of_orderness=B``, so no row is
late. The operators' output must then equal a batch computation over the full table (pyarrow
``group_by`` or plain Python), whatever the batches, the arrival order and the parallelism.

The late-data properties deliver some rows further behind than B and check that no row is
lost: each is counted in a window or comes out of ``late()``. With one task they also replay
the watermark (max ts of the batches before a batch - B - 1): a row is late exactly when it
had passed the end plus allowed lateness of all the row's windows, a window's final value
covers the rows that came before that point, and each batch bringing rows to a window that
already fired re-emits it once, as an update.

Scores are multiples of 1/4, so float sums are exact whatever the order of addition and
results of different parallelisms can be compared for equality.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import Dataflow, InlineExecutor
from operators import Hopping, Session, Tumbling, agg

BASE = 1_700_000_000_000  # epoch ms of the first possible event
DISTRICTS = ["Mitte", "Nord", "Süd", "Ost"]
MIN_WM = -(2**63)

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    database=None,  # do not save failing examples between runs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- generated inputs -----------------------------------------------------------------------


class Case:
    """A table in arrival order, its batches and the out-of-orderness bound of its source.

    The batches are ``from_table(batch_size=...)`` when ``batch_size`` is set, else slices of
    the table at the ``cuts`` (a repeated cut makes an empty batch).
    """

    def __init__(self, table: pa.Table, bound: int, batch_size: int | None, cuts: list[int]) -> None:
        self.table = table
        self.bound = bound
        self.batch_size = batch_size
        self.cuts = cuts

    def batches(self) -> list[pa.RecordBatch]:
        """The batches exactly as the source will deliver them."""
        if self.batch_size is not None:
            return self.table.to_batches(max_chunksize=self.batch_size)
        bounds = [0, *self.cuts, self.table.num_rows]
        return [
            self.table.slice(a, b - a).to_batches()[0] if b > a else _empty_batch(self.table.schema)
            for a, b in zip(bounds, bounds[1:], strict=False)
        ]

    def source(self, flow: Dataflow, name: str):
        if self.batch_size is not None:
            return flow.from_table(name, self.table, event_time="ts", batch_size=self.batch_size, out_of_orderness=self.bound)
        return flow.from_table(name, self.batches(), event_time="ts", out_of_orderness=self.bound)

    def rows(self) -> list[dict]:
        return self.table.to_pylist()

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        how = f"batch_size={self.batch_size}" if self.batch_size is not None else f"cuts={self.cuts}"
        return f"Case(bound={self.bound}, {how}, rows={self.rows()})"


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


@st.composite
def cases(
    draw,
    max_rows: int = 120,
    unique_ts: bool | None = None,
    late: bool = False,
    id_column: str = "id",
    extra_columns: bool = True,
    bounds: tuple[int, ...] = (0, 1, 7, 60, 400),
    spans: tuple[int, ...] = (15, 300, 3000),
) -> Case:
    """A detection table in out-of-order arrival order. With ``late``, some rows arrive
    further behind than the declared bound.

    Rows are tuples (offset, district, score, track, jitter) drawn as a list of chunks:
    hypothesis draws short lists, and a list of lists is long enough while still shrinking
    well (by deleting chunks, then rows)."""
    span = draw(st.sampled_from(spans))
    bound = draw(st.sampled_from(bounds))
    key_count = draw(st.integers(1, len(DISTRICTS)))
    delay = st.just(0)
    if late:  # some rows (about one in four) delayed by up to ``extra`` beyond the bound
        extra = draw(st.sampled_from([300, 2000]))
        delay = st.one_of(st.just(0), st.just(0), st.just(0), st.integers(1, extra))
    unique = draw(st.booleans()) if unique_ts is None else unique_ts
    row = st.tuples(
        st.integers(0, span + (2 * max_rows if unique else 0)),
        st.sampled_from(DISTRICTS[:key_count]),
        st.integers(-40, 40),
        st.integers(0, 4),
        st.builds(lambda j, d: j + d, st.integers(0, bound), delay),
    )
    chunks = draw(st.lists(st.lists(row, min_size=3, max_size=30), min_size=1, max_size=12))
    rows = [r for chunk in chunks for r in chunk][:max_rows]
    if unique:  # unique event times (so first/last and as-of matches are unambiguous)
        seen: set[int] = set()
        rows = [r for r in rows if not (r[0] in seen or seen.add(r[0]))]  # the first row of each time
    n = len(rows)
    order = sorted(range(n), key=lambda i: (rows[i][0] + rows[i][4], i))
    columns = {
        id_column: pa.array(order, pa.int64()),
        "ts": pa.array([BASE + rows[i][0] for i in order], pa.int64()),
        "district": pa.array([rows[i][1] for i in order], pa.string()),
    }
    if extra_columns:
        columns["score"] = pa.array([rows[i][2] / 4 for i in order], pa.float64())
        columns["track"] = pa.array([rows[i][3] for i in order], pa.int64())
    table = pa.table(columns)
    batches = draw(st.integers(1, min(n, 40)))
    if draw(st.booleans()):
        return Case(table, bound, -(-n // batches), [])
    # Random cut points; a repeated one makes an empty batch.
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=batches - 1, max_size=batches - 1)))
    return Case(table, bound, None, cuts)


# ---- helpers --------------------------------------------------------------------------------


def as_rows(table: pa.Table) -> list[dict]:
    """Rows as dicts, timestamps as int epoch ms."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        columns[name] = column.to_pylist()
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def by_window(rows: list[dict], keys: list[str], unique: bool = True) -> dict[tuple, dict]:
    """Window output rows by (keys..., window_start); each window at most once if ``unique``."""
    result: dict[tuple, dict] = {}
    for row in rows:
        key = (*(row[k] for k in keys), row["window_start"])
        if unique:
            assert key not in result, f"window {key} emitted twice: {result[key]} and {row}"
        result[key] = row  # the latest emission wins
    return result


def assert_same_windows(actual: dict[tuple, dict], expected: dict[tuple, dict], columns: list[str]) -> None:
    assert sorted(actual) == sorted(expected), (
        f"windows differ: missing {sorted(set(expected) - set(actual))}, extra {sorted(set(actual) - set(expected))}"
    )
    for key in sorted(expected):
        for column in columns:
            got, want = actual[key][column], expected[key][column]
            if isinstance(want, float):
                assert got == pytest.approx(want), f"window {key}, {column}: {got} != {want}"
            else:
                assert got == want, f"window {key}, {column}: {got} != {want}"


def run(case: Case, build, parallelism: int, right: Case | None = None):
    """Builds a flow on the case's source (and a right source), runs it, returns the result."""
    # What was drawn (pytest --hypothesis-show-statistics).
    n, batches, ts = case.table.num_rows, len(case.batches()), case.table["ts"].to_pylist()
    event(f"rows: {'<10' if n < 10 else '10-49' if n < 50 else '50+'}")
    event(f"batches: {'1' if batches == 1 else '2-9' if batches < 10 else '10+'}")
    event(f"out of order: {any(a > b for a, b in zip(ts, ts[1:], strict=False))}")
    flow = Dataflow("properties", parallelism=parallelism)
    stream = case.source(flow, "left")
    if right is None:
        build(stream)
    else:
        build(stream, right.source(flow, "right"))
    return InlineExecutor().run(flow)


def tumbling_expected(table: pa.Table, size: int, aggregations: list, keys: list[str]) -> dict[tuple, dict]:
    """Full computation with pyarrow group_by over (keys, ts - ts % size)."""
    ts = table.column("ts").to_numpy()
    full = table.append_column("window_start", pa.array(ts - ts % size, pa.int64())).sort_by("ts")
    grouped = full.group_by(keys + ["window_start"], use_threads=False).aggregate(aggregations)
    rows = grouped.to_pylist()
    for row in rows:
        if "count_all" in row:
            row["count"] = row.pop("count_all")
        row["window_end"] = row["window_start"] + size
    return by_window(rows, keys)


def unique_per_key(table: pa.Table, keys: list[str]) -> bool:
    pairs = list(zip(*(table.column(k).to_pylist() for k in keys + ["ts"]), strict=True))
    return len(set(pairs)) == len(pairs)


WINDOW_AGGS = [
    agg("count"),
    agg("sum", "score"),
    agg("min", "score"),
    agg("max", "score"),
    agg("mean", "score"),
    agg("count_distinct", "track"),
    agg("first", "score"),
    agg("last", "score"),
]
PYARROW_AGGS = [
    ([], "count_all"),
    ("score", "sum"),
    ("score", "min"),
    ("score", "max"),
    ("score", "mean"),
    ("track", "count_distinct"),
    ("score", "first"),
    ("score", "last"),
]
SIZES = [1, 7, 100, 250, 1000]


# ---- windows --------------------------------------------------------------------------------


@PROPERTY
@given(case=cases(), size=st.sampled_from(SIZES))
def test_keyed_tumbling_equals_group_by(case: Case, size: int) -> None:
    outputs = []
    for parallelism in (1, 2):
        result = run(case, lambda s: s.key_by("district").window(Tumbling(size), WINDOW_AGGS).collect("out"), parallelism)
        table = result.table("out")
        assert not any(table.column("is_update").to_pylist())
        rows = as_rows(table)
        for row in rows:
            assert row["window_end"] == row["window_start"] + size
            assert row["window_time"] == row["window_end"] - 1
        outputs.append(rows)
        columns = ["window_end", "count", "score_sum", "score_min", "score_max", "score_mean", "track_count_distinct"]
        if unique_per_key(case.table, ["district"]):
            columns += ["score_first", "score_last"]
        expected = tumbling_expected(case.table, size, PYARROW_AGGS, ["district"])
        assert_same_windows(by_window(rows, ["district"]), expected, columns)
    # The parallelism changes nothing (scores are exact in binary, so sums are too).
    key = lambda row: (row["district"], row["window_start"])
    if unique_per_key(case.table, ["district"]):
        assert sorted(outputs[0], key=key) == sorted(outputs[1], key=key)
    else:  # first/last may differ between equal timestamps
        strip = lambda rows: sorted(
            ({k: v for k, v in r.items() if k not in ("score_first", "score_last")} for r in rows), key=key
        )
        assert strip(outputs[0]) == strip(outputs[1])


@PROPERTY
@given(case=cases(unique_ts=True), size=st.sampled_from(SIZES), parallelism=st.sampled_from([1, 2]))
def test_tumbling_first_last_with_unique_times(case: Case, size: int, parallelism: int) -> None:
    aggs = [agg("first", "score"), agg("last", "score"), agg("first", "track", name="first_track")]
    result = run(case, lambda s: s.key_by("district").window(Tumbling(size), aggs).collect("out"), parallelism)
    expected = tumbling_expected(case.table, size, [("score", "first"), ("score", "last"), ("track", "first")], ["district"])
    for row in expected.values():
        row["first_track"] = row.pop("track_first")
    actual = by_window(as_rows(result.table("out")), ["district"])
    assert_same_windows(actual, expected, ["score_first", "score_last", "first_track"])


@PROPERTY
@given(case=cases(), size=st.sampled_from(SIZES), parallelism=st.sampled_from([1, 2]))
def test_global_tumbling_count(case: Case, size: int, parallelism: int) -> None:
    aggs = [agg("count"), agg("sum", "score"), agg("first", "score"), agg("last", "score")]
    result = run(case, lambda s: s.window(Tumbling(size), aggs).collect("out"), parallelism)
    rows = as_rows(result.table("out"))
    assert all(
        list(row) == ["window_start", "window_end", "window_time", "count", "score_sum", "score_first", "score_last", "is_update"]
        for row in rows
    )
    expected = tumbling_expected(
        case.table, size, [([], "count_all"), ("score", "sum"), ("score", "first"), ("score", "last")], []
    )
    columns = ["window_end", "count", "score_sum"]
    if unique_per_key(case.table, []):
        columns += ["score_first", "score_last"]
    assert_same_windows(by_window(rows, []), expected, columns)


def hopping_expected(rows: list[dict], size: int, slide: int) -> dict[tuple, dict]:
    """Each row expanded to every window [s, s + size), s a multiple of slide, containing it."""
    windows: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        start = row["ts"] // slide * slide
        while start + size > row["ts"]:
            windows[(row["district"], start)].append(row)
            start -= slide
    return {
        key: {
            "window_end": key[1] + size,
            "count": len(members),
            "score_sum": sum(r["score"] for r in members),
            "score_max": max(r["score"] for r in members),
        }
        for key, members in windows.items()
    }


@PROPERTY
@given(
    case=cases(),
    shape=st.sampled_from([(10, 5), (100, 25), (1000, 250), (30, 30), (5, 3), (100, 40), (250, 100), (7, 2)]),
    parallelism=st.sampled_from([1, 2]),
)
def test_keyed_hopping_equals_expansion(case: Case, shape: tuple[int, int], parallelism: int) -> None:
    size, slide = shape
    aggs = [agg("count"), agg("sum", "score"), agg("max", "score")]
    result = run(case, lambda s: s.key_by("district").window(Hopping(size, slide), aggs).collect("out"), parallelism)
    table = result.table("out")
    assert not any(table.column("is_update").to_pylist())
    actual = by_window(as_rows(table), ["district"])
    assert_same_windows(actual, hopping_expected(case.rows(), size, slide), ["window_end", "count", "score_sum", "score_max"])


def session_expected(rows: list[dict], gap: int) -> dict[tuple, dict]:
    """Per key, rows sorted by time, cut where the time jumps by >= gap."""
    per_key: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        per_key[row["district"]].append(row)
    expected = {}
    for district, members in per_key.items():
        members.sort(key=lambda r: r["ts"])
        sessions = [[members[0]]]
        for previous, row in zip(members, members[1:], strict=False):
            if row["ts"] - previous["ts"] >= gap:
                sessions.append([])
            sessions[-1].append(row)
        for session in sessions:
            scores = [r["score"] for r in session]
            expected[(district, session[0]["ts"])] = {
                "window_end": session[-1]["ts"] + gap,
                "count": len(session),
                "score_min": min(scores),
                "score_max": max(scores),
                "score_sum": sum(scores),
                "score_first": session[0]["score"],
                "score_last": session[-1]["score"],
            }
    return expected


@PROPERTY
@given(case=cases(), gap=st.sampled_from([1, 2, 10, 50, 300, 2000]), parallelism=st.sampled_from([1, 2]))
def test_keyed_session_equals_full_sessions(case: Case, gap: int, parallelism: int) -> None:
    aggs = [
        agg("count"),
        agg("min", "score"),
        agg("max", "score"),
        agg("sum", "score"),
        agg("first", "score"),
        agg("last", "score"),
    ]
    result = run(case, lambda s: s.key_by("district").window(Session(gap), aggs).collect("out"), parallelism)
    table = result.table("out")
    assert not any(table.column("is_update").to_pylist())
    actual = by_window(as_rows(table), ["district"])
    columns = ["window_end", "count", "score_min", "score_max", "score_sum"]
    if unique_per_key(case.table, ["district"]):
        columns += ["score_first", "score_last"]
    assert_same_windows(actual, session_expected(case.rows(), gap), columns)


# ---- late rows ------------------------------------------------------------------------------


def windows_of(ts: int, size: int, slide: int) -> list[int]:
    """Starts of the windows [s, s + size), s a multiple of slide, that contain ``ts``."""
    start, starts = ts // slide * slide, []
    while start + size > ts:
        starts.append(start)
        start -= slide
    return starts


def simulate_lateness(case: Case, size: int, slide: int, lateness: int) -> list[tuple[int, dict, dict[int, str]]]:
    """For one source task feeding one window task: per row (batch index, row, window start ->
    "on_time", "allowed" (the window has fired, but is within its allowed lateness) or
    "expired"). A batch is processed with the watermark the batches before it made:
    max ts seen - bound - 1. A row is late when all its windows have expired."""
    result = []
    max_seen = None
    for index, batch in enumerate(case.batches()):
        watermark = MIN_WM if max_seen is None else max_seen - case.bound - 1
        for row in batch.to_pylist():
            status = {}
            for start in windows_of(row["ts"], size, slide):
                last_ms = start + size - 1
                status[start] = "expired" if last_ms + lateness <= watermark else "allowed" if last_ms <= watermark else "on_time"
            result.append((index, row, status))
        if batch.num_rows:
            batch_max = max(batch.column("ts").to_pylist())
            max_seen = batch_max if max_seen is None else max(max_seen, batch_max)
    return result


LATE_AGGS = [agg("count"), agg("sum", "score"), agg("max", "score"), agg("mean", "score")]


@settings(PROPERTY, max_examples=40)
@given(
    case=cases(late=True, bounds=(0, 5, 50), spans=(1000, 3000)),
    shape=st.sampled_from([(7, 7), (50, 50), (100, 100), (100, 25), (50, 20), (30, 7)]),
    lateness=st.sampled_from([0, 30, 300]),
    parallelism=st.sampled_from([1, 2]),
)
def test_late_rows_are_counted_or_side_output(case: Case, shape: tuple[int, int], lateness: int, parallelism: int) -> None:
    size, slide = shape
    spec = Tumbling(size, allowed_lateness=lateness) if size == slide else Hopping(size, slide, allowed_lateness=lateness)

    def build(stream):
        windowed = stream.key_by("district").window(spec, LATE_AGGS)
        windowed.collect("out")
        windowed.late().collect("late")

    result = run(case, build, parallelism)
    late = result.table("late")
    late_ids = late.column("id").to_pylist()
    event(f"late rows: {bool(late_ids)}")
    assert len(late_ids) == len(set(late_ids))
    assert late.schema == case.table.schema.set(1, pa.field("ts", pa.timestamp("ms", "UTC")))
    rows = as_rows(result.table("out"))
    event(f"updates: {any(row['is_update'] for row in rows)}")
    final = by_window(rows, ["district"], unique=lateness == 0)  # the latest emission of each window
    if lateness == 0:  # no row can change a window that has fired
        assert not any(row["is_update"] for row in rows)
    # Each window is emitted once on time at most; the rest are updates.
    on_time = Counter((r["district"], r["window_start"]) for r in rows if not r["is_update"])
    assert max(on_time.values(), default=0) <= 1
    columns = ["count", "score_sum", "score_max", "score_mean"]
    full = [([], "count_all"), ("score", "sum"), ("score", "max"), ("score", "mean")]
    if size == slide:
        # Nothing silently lost: every row is in a window's final count or in late().
        assert sum(row["count"] for row in final.values()) + len(late_ids) == case.table.num_rows
        # The final value of each window is the full computation over the rows that were not late.
        late_set = set(late_ids)
        kept = case.table.filter(pa.array([i not in late_set for i in case.table.column("id").to_pylist()], pa.bool_()))
        assert_same_windows(final, tumbling_expected(kept, size, full, ["district"]), columns)
    if parallelism == 1:
        # Exactly the rows whose every window the watermark had passed (end + lateness) are
        # late; a window's final value is the full computation over the rows that came while
        # it was open or within its lateness; each batch that brings rows to a window that
        # has fired (within its lateness) re-emits it, as an update.
        simulated = simulate_lateness(case, size, slide, lateness)
        assert sorted(late_ids) == sorted(row["id"] for _, row, status in simulated if set(status.values()) == {"expired"})
        members: dict[tuple, list[int]] = defaultdict(list)
        expected_updates: Counter = Counter()
        for index, row, status in simulated:
            for start, state in status.items():
                if state != "expired":
                    members[(row["district"], start)].append(row["id"])
                if state == "allowed":
                    expected_updates[(index, row["district"], start)] = 1
        kept_rows = {row["id"]: row for _, row, _ in simulated}
        expected = {}
        for key, ids in members.items():
            scores = [kept_rows[i]["score"] for i in ids]
            expected[key] = {
                "count": len(ids),
                "score_sum": sum(scores),
                "score_max": max(scores),
                "score_mean": sum(scores) / len(ids),
            }
        assert_same_windows(final, expected, columns)
        updates = Counter((r["district"], r["window_start"]) for r in rows if r["is_update"])
        assert updates == Counter((district, start) for _, district, start in expected_updates)


@PROPERTY
@given(
    case=cases(late=True, bounds=(0, 5, 50), spans=(1000, 3000)),
    gap=st.sampled_from([1, 10, 50, 300]),
    parallelism=st.sampled_from([1, 2]),
)
def test_session_late_rows_are_counted_or_side_output(case: Case, gap: int, parallelism: int) -> None:
    def build(stream):
        windowed = stream.key_by("district").window(Session(gap), [agg("count"), agg("min", "ts", name="first_ts")])
        windowed.collect("out")
        windowed.late().collect("late")

    result = run(case, build, parallelism)
    late_ids = result.table("late").column("id").to_pylist()
    rows = as_rows(result.table("out"))
    assert not any(row["is_update"] for row in rows)
    assert len(late_ids) == len(set(late_ids))
    assert sum(row["count"] for row in rows) + len(late_ids) == case.table.num_rows
    for row in rows:
        assert row["first_ts"] == row["window_start"]
        assert row["window_end"] - row["window_start"] >= gap
    if parallelism == 1:
        # A row is late exactly when the watermark had passed the end of the shortest session
        # it could make: ts + gap - 1.
        expected_late = []
        max_seen = None
        for batch in case.batches():
            watermark = MIN_WM if max_seen is None else max_seen - case.bound - 1
            expected_late += [row["id"] for row in batch.to_pylist() if row["ts"] + gap - 1 <= watermark]
            if batch.num_rows:
                max_seen = max([*batch.column("ts").to_pylist(), *([] if max_seen is None else [max_seen])])
        assert sorted(late_ids) == sorted(expected_late)


# ---- joins ----------------------------------------------------------------------------------


def right_cases(max_rows: int = 80) -> st.SearchStrategy[Case]:
    """Right side of a join (e.g. weather readings): ts unique per key, a ``rid`` and a value."""
    return cases(max_rows=max_rows, unique_ts=True, id_column="rid", extra_columns=False).map(_with_reading)


def _with_reading(case: Case) -> Case:
    rid = case.table.column("rid").to_pylist()
    table = case.table.append_column("temp", pa.array([r * 0.5 for r in rid], pa.float64()))
    return Case(table, case.bound, case.batch_size, case.cuts)


def asof_expected(left: list[dict], right: list[dict], tolerance: int | None) -> list[tuple]:
    expected = []
    for row in left:
        candidates = [
            r
            for r in right
            if r["district"] == row["district"]
            and r["ts"] <= row["ts"]
            and (tolerance is None or row["ts"] - r["ts"] <= tolerance)
        ]
        best = max(candidates, key=lambda r: r["ts"], default=None)
        expected.append((row["id"], None, None, None) if best is None else (row["id"], best["rid"], best["ts"], best["temp"]))
    return sorted(expected, key=repr)


@PROPERTY
@given(
    left=cases(max_rows=100),
    right=right_cases(),
    tolerance=st.sampled_from([None, None, 0, 3, 50, 500]),
    parallelism=st.sampled_from([1, 2]),
)
def test_asof_join_equals_latest_match(left: Case, right: Case, tolerance: int | None, parallelism: int) -> None:
    def build(l_stream, r_stream):
        joined = l_stream.key_by("district").asof_join(r_stream.key_by("district"), tolerance=tolerance)
        joined.collect("out")
        joined.late().collect("late")

    result = run(left, build, parallelism, right)
    assert result.table("late").num_rows == 0
    table = result.table("out")
    assert table.column_names == ["id", "ts", "district", "score", "track", "rid", "right_ts", "temp"]
    rows = as_rows(table)
    actual = sorted(((r["id"], r["rid"], r["right_ts"], r["temp"]) for r in rows), key=repr)
    assert actual == asof_expected(left.rows(), right.rows(), tolerance)
    # The left columns pass through unchanged.
    assert sorted((r["id"], r["ts"], r["district"], r["score"]) for r in rows) == sorted(
        (r["id"], r["ts"], r["district"], r["score"]) for r in left.rows()
    )


@PROPERTY
@given(
    left=cases(max_rows=100),
    right=cases(max_rows=100, id_column="rid", extra_columns=False),
    interval=st.one_of(
        st.builds(lambda w: {"within": w}, st.sampled_from([0, 1, 20, 300])),
        st.tuples(st.integers(-400, 400), st.integers(0, 400)).map(lambda t: {"lower": t[0], "upper": t[0] + t[1]}),
    ),
    parallelism=st.sampled_from([1, 2]),
)
def test_interval_join_equals_nested_loop(left: Case, right: Case, interval: dict, parallelism: int) -> None:
    lower, upper = (-interval["within"], interval["within"]) if "within" in interval else (interval["lower"], interval["upper"])

    def build(l_stream, r_stream):
        joined = l_stream.key_by("district").interval_join(r_stream.key_by("district"), **interval)
        joined.collect("out")
        joined.late().collect("late")
        joined.side_output("late_right").collect("late_right")

    result = run(left, build, parallelism, right)
    assert result.table("late").num_rows == 0 and result.table("late_right").num_rows == 0
    table = result.table("out")
    assert table.column_names == ["id", "ts", "district", "score", "track", "rid", "right_ts"]
    actual = sorted((r["id"], r["rid"], r["ts"], r["right_ts"]) for r in as_rows(table))
    expected = sorted(
        (lrow["id"], rrow["rid"], lrow["ts"], rrow["ts"])
        for lrow in left.rows()
        for rrow in right.rows()
        if lrow["district"] == rrow["district"] and lower <= lrow["ts"] - rrow["ts"] <= upper
    )
    assert actual == expected  # as multisets: every pair exactly once


def test_case_arrival_respects_the_bound() -> None:
    """The generator's promise: each row is at most ``bound`` behind the max ts before it."""

    @settings(max_examples=50, deadline=None, database=None)
    @given(case=cases())
    def check(case: Case) -> None:
        ts = case.table.column("ts").to_numpy()
        if len(ts) > 1:
            running_max = np.maximum.accumulate(ts)[:-1]
            assert (ts[1:] >= running_max - case.bound).all()
        assert sum(b.num_rows for b in case.batches()) == case.table.num_rows

    check()
