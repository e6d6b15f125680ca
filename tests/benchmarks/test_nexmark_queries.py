"""Nexmark queries: each compiles, and on a small bounded input gives DuckDB's result of the same query."""

import json
from collections import Counter
from dataclasses import replace
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from benchmarks.nexmark.connector import nexmark_connectors
from benchmarks.nexmark.generator import NexmarkConfig, nexmark_tables
from benchmarks.nexmark.run import QUERIES, compile_query, job_sources, kind_rows, main, query_text
from operators.sql import SqlError, compile_sql

# 20,000 events at 200 events/s span 100 s of event time: 50 hopping windows (q5), 10 tumbling
# ones (q7, q8), and bidders with several sessions each (q11).
CONFIG = NexmarkConfig(events=20_000, events_per_second=200, batch_size=2_000)

# The same queries in DuckDB, over nexmark_tables(CONFIG). Timestamps are epoch milliseconds on
# both sides; windows start at multiples of their slide since the epoch, as in Flink.
DUCKDB = {
    "q0": "SELECT auction, bidder, price, epoch_ms(dateTime), extra FROM bid",
    "q1": "SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)), epoch_ms(dateTime), extra FROM bid",
    "q2": "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
    "q3": """
        SELECT P.name, P.city, P.state, A.id
        FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
        WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')
    """,
    # A bid is in the 5 hopping windows (10 s, sliding by 2 s) that start at the last multiple of
    # 2 s at or before it, and at the 4 multiples before that.
    "q5": """
        WITH hop AS (
            SELECT auction, epoch_ms(dateTime) - epoch_ms(dateTime) % 2000 - k * 2000 AS starttime
            FROM bid, range(0, 5) AS r(k)
        ),
        AuctionBids AS (SELECT auction, count(*) AS num, starttime FROM hop GROUP BY auction, starttime),
        MaxBids AS (SELECT max(num) AS maxn, starttime FROM AuctionBids GROUP BY starttime)
        SELECT A.auction, A.num FROM AuctionBids A JOIN MaxBids M ON A.starttime = M.starttime AND A.num >= M.maxn
    """,
    "q7": """
        WITH B1 AS (
            SELECT max(price) AS maxprice, epoch_ms(dateTime) // 10000 * 10000 + 10000 AS dateTime
            FROM bid GROUP BY epoch_ms(dateTime) // 10000
        )
        SELECT B.auction, B.bidder, B.price, epoch_ms(B.dateTime), B.extra
        FROM bid B JOIN B1 ON B.price = B1.maxprice
        WHERE epoch_ms(B.dateTime) BETWEEN B1.dateTime - 10000 AND B1.dateTime
    """,
    "q8": """
        WITH P AS (SELECT DISTINCT id, name, epoch_ms(dateTime) // 10000 * 10000 AS starttime FROM person),
             A AS (SELECT DISTINCT seller, epoch_ms(dateTime) // 10000 * 10000 AS starttime FROM auction)
        SELECT P.id, P.name, P.starttime FROM P JOIN A ON P.id = A.seller AND P.starttime = A.starttime
    """,
    # Flink's sessions: a bid joins the session of the bidder's previous bid when it comes at most
    # the gap after it (Flink merges session windows [t, t + gap) that touch); the session ends
    # a gap after its last bid.
    "q11": """
        WITH ordered AS (
            SELECT bidder, epoch_ms(dateTime) AS t,
                   lag(epoch_ms(dateTime)) OVER (PARTITION BY bidder ORDER BY epoch_ms(dateTime)) AS previous
            FROM bid
        ),
        sessions AS (
            SELECT bidder, t, sum(CASE WHEN previous IS NULL OR t - previous >= 10000 THEN 1 ELSE 0 END)
                   OVER (PARTITION BY bidder ORDER BY t ROWS UNBOUNDED PRECEDING) AS session
            FROM ordered
        )
        SELECT bidder, count(*), min(t), max(t) + 10000 FROM sessions GROUP BY bidder, session
    """,
}

QUERY_PARAMS = [pytest.param(q, id=q) for q in QUERIES]


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return nexmark_tables(CONFIG)


def _comparable(value: object) -> object:
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def _rows(table: pa.Table) -> Counter[tuple[object, ...]]:
    """The multiset of a table's rows, timestamps as epoch milliseconds."""
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("ms", column.type.tz)).cast(pa.int64())
        columns.append(column.to_pylist())
    return Counter(tuple(_comparable(v) for v in row) for row in zip(*columns, strict=True))


def _duckdb_rows(query: str, tables: dict[str, pa.Table]) -> Counter[tuple[object, ...]]:
    connection = duckdb.connect()
    for name, table in tables.items():
        connection.register(name, table)
    return Counter(tuple(_comparable(v) for v in row) for row in connection.execute(DUCKDB[query]).fetchall())


@pytest.mark.parametrize("query", QUERY_PARAMS)
def test_query_compiles(query):
    job = compile_query(query, CONFIG)
    plan = job.explain()
    assert f"nexmark_{query} [blackhole, append]" in plan


@pytest.mark.parametrize("query", QUERY_PARAMS)
def test_query_gives_duckdbs_result(query, tables):
    job = compile_query(query, CONFIG, sink="collect")
    result = job.run()
    assert result.counts() == {}, "rows were dropped as late or dead letters"
    actual = _rows(result.table())
    expected = _duckdb_rows(query, tables)
    assert sum(expected.values()) > 0, "the input is too small to test this query"
    assert actual == expected, (
        f"only in ours: {list((actual - expected).items())[:5]}; only in DuckDB: {list((expected - actual).items())[:5]}"
    )


@pytest.mark.xfail(
    strict=True,
    reason="our session windows split rows exactly gap apart (a new session starts at >= gap); Flink merges session "
    "windows that touch (TimeWindow.intersects: start <= other.end). We keep the split: with touching merges a "
    "session fired at end - 1 could still be extended by a row at its end, so the result would depend on arrival "
    "(Flink's does); ours equals the batch answer whatever the arrival",
)
def test_q11_merges_sessions_that_touch_as_flink_does():
    # Bids exactly the gap apart: the windows [t, t + gap) of Flink's sessions touch, and merge.
    times = [0, 10_000, 19_999]
    bids = pa.table(
        {
            "auction": [1000] * 3,
            "bidder": [1] * 3,
            "price": [100] * 3,
            "channel": ["Google"] * 3,
            "url": ["u"] * 3,
            "dateTime": pa.array(times, pa.timestamp("ms", "UTC")),
            "extra": [""] * 3,
        }
    )
    text = query_text("q11", sink="collect").replace("'connector' = 'nexmark',\n  'kind' = 'bid'", "'connector' = 'memory'")
    table = compile_sql(text, tables={"bid": bids}).run().table()
    assert _rows(table) == Counter({(1, 3, 0, 29_999): 1})


def test_the_test_input_has_several_windows_and_sessions(tables):
    bids = tables["bid"]
    times = bids["dateTime"].cast(pa.int64()).to_numpy()
    assert times.max() - times.min() > 90_000
    sessions = _duckdb_rows("q11", tables)
    assert sum(sessions.values()) > len({row[0] for row in sessions})


def test_a_collect_sink_replaces_the_blackhole():
    blackhole, collect = query_text("q2"), query_text("q2", sink="collect")
    assert blackhole.count("'connector' = 'blackhole'") == collect.count("'connector' = 'collect'") == 1
    assert collect == blackhole.replace("'connector' = 'blackhole'", "'connector' = 'collect'")


def test_kind_rows_counts_what_the_generator_makes(tables):
    for kind, table in tables.items():
        assert kind_rows(CONFIG, kind) == table.num_rows
    offset = NexmarkConfig(events=777, first_event_id=13)
    generated = nexmark_tables(offset)
    assert {k: kind_rows(offset, k) for k in generated} == {k: t.num_rows for k, t in generated.items()}


def test_job_sources_name_the_tables_a_query_reads():
    # Blocks are sized so that a batch holds about batch_size rows of the table's kind.
    bids = replace(CONFIG, batch_size=-(-CONFIG.batch_size * 50 // 46))
    assert job_sources(compile_query("q2", CONFIG)) == [("bid", bids)]
    persons, auctions = (
        replace(CONFIG, batch_size=CONFIG.batch_size * 50),
        replace(CONFIG, batch_size=-(-CONFIG.batch_size * 50 // 3)),
    )
    assert sorted(job_sources(compile_query("q3", CONFIG))) == sorted([("auction", auctions), ("person", persons)])


# ---- the connector ----------------------------------------------------------------------------

BID_COLUMNS = "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR"


def _bid_table(options: str, columns: str = BID_COLUMNS, watermark: str = "dateTime", kind: str = "bid") -> str:
    return (
        f"CREATE TABLE bid ({columns}, WATERMARK FOR dateTime AS {watermark}) "
        f"WITH ('connector' = 'nexmark', 'kind' = '{kind}'{options});\n"
    )


def test_table_options_override_the_config():
    text = _bid_table(", 'events' = '500', 'seed' = '7', 'batch.size' = '100'") + "SELECT auction FROM bid;"
    job = compile_sql(text, connectors=nexmark_connectors(CONFIG))
    ((_, config),) = job_sources(job)
    assert (config.events, config.seed, config.batch_size, config.events_per_second) == (500, 7, 100, 200)
    assert job.run().table().num_rows == kind_rows(config, "bid") == 460


def test_declared_columns_may_be_a_subset_in_another_order():
    text = _bid_table(", 'events' = '500'", "dateTime TIMESTAMP(3), price DOUBLE, AUCTION BIGINT") + "SELECT * FROM bid;"
    table = compile_sql(text, connectors=nexmark_connectors()).run().table()
    assert table.schema.names == ["dateTime", "price", "AUCTION"]
    assert table.schema.field("price").type == pa.float64()
    expected = nexmark_tables(NexmarkConfig(events=500))["bid"]
    assert table["AUCTION"].to_pylist() == expected["auction"].to_pylist()


@pytest.mark.parametrize(
    ("options", "columns", "watermark", "kind", "message"),
    [
        ("", BID_COLUMNS, "dateTime", "bids", "option 'kind' = 'bids' is not allowed; kinds: person, auction, bid"),
        (", 'events' = 'many'", BID_COLUMNS, "dateTime", "bid", "option 'events' must be an integer, not 'many'"),
        (", 'events.per.second' = '0'", BID_COLUMNS, "dateTime", "bid", "option 'events.per.second' must be >= 1, not 0"),
        ("", "id BIGINT, dateTime TIMESTAMP(3)", "dateTime", "bid", "a nexmark bid has no column 'id'"),
        ("", "channel BIGINT, dateTime TIMESTAMP(3)", "dateTime", "bid", "column 'channel' is string in a nexmark bid"),
        (
            ", 'out.of.order.group' = '1001'",
            BID_COLUMNS,
            "dateTime - INTERVAL '4' SECOND",
            "bid",
            "the generator is up to 5000 ms out of order",
        ),
    ],
)
def test_connector_errors_name_the_table_and_option(options, columns, watermark, kind, message):
    text = _bid_table(options, columns, watermark, kind) + "SELECT * FROM bid;"
    with pytest.raises(SqlError, match="table 'bid'") as error:
        compile_sql(text, connectors=nexmark_connectors(CONFIG))
    assert message in str(error.value)


def test_unknown_connector_option_is_refused_at_create_table():
    with pytest.raises(SqlError, match="connector 'nexmark' has no option 'rate'"):
        compile_sql(_bid_table(", 'rate' = '5'") + "SELECT * FROM bid;", connectors=nexmark_connectors())


def test_the_runner_writes_json_and_markdown(tmp_path):
    stem = tmp_path / "nexmark"
    assert main(["--events", "20000", "--queries", "q0,q2", "--output", str(stem)]) == 0
    report = json.loads(stem.with_suffix(".json").read_text())
    rows = {row["query"]: row for row in report["results"]}
    assert set(rows) == {"generator only: bid", "generator only: person + auction", "q0", "q2"}
    assert rows["q0"]["events"] == rows["q0"]["output_rows"] == 18_400
    assert rows["q0"]["flink_events_per_s_per_core"] == 155_020
    assert rows["q2"]["ratio_to_flink"] == pytest.approx(rows["q2"]["events_per_s_per_core"] / 175_210)
    markdown = stem.with_suffix(".md").read_text()
    assert "| q0 | bid | 18,400 |" in markdown and "load average at start" in markdown
