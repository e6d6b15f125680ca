"""Nexmark event generator: schemas, proportions, ids, hot keys, timestamps, sizes, the source."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from benchmarks.nexmark.generator import (
    AUCTION,
    AUCTION_ID_LEAD,
    BID,
    FIRST_AUCTION_ID,
    FIRST_PERSON_ID,
    HOT_CHANNELS,
    HOT_ID_STRIDE,
    PERSON,
    PERSON_ID_LEAD,
    US_CITIES,
    US_STATES,
    NexmarkConfig,
    NexmarkSource,
    generate_block,
    last_auction_id,
    last_person_id,
    nexmark_tables,
)
from engine import OptionError
from engine.sources import END_OF_INPUT

UTC_MS = pa.timestamp("ms", tz="UTC")
# At 1000 events/s, an event's timestamp minus the base time is its event number (in ms).
ONE_PER_MS = {"events_per_second": 1000}


def numbers(config, table):
    """Event numbers of the rows, read back from their timestamps (needs 1000 events/s)."""
    return pc.subtract(table["dateTime"].cast(pa.int64()), config.base_time_ms).to_numpy()


def read(source, partition=0, partitions=1):
    source.open(partition, partitions)
    batches = []
    while (batch := source.poll()) is not END_OF_INPUT:
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=source.schema)


def sizes(table, fixed, columns):
    """Row sizes as the reference counts them: fixed bytes + these string columns + extra."""
    total = np.full(table.num_rows, fixed)
    for name in (*columns, "extra"):
        total = total + pc.binary_length(table[name]).to_numpy()
    return total


def test_schemas_have_the_flink_nexmark_columns():
    assert PERSON == pa.schema(
        [("id", pa.int64()), ("name", pa.string()), ("emailAddress", pa.string()), ("creditCard", pa.string()),
         ("city", pa.string()), ("state", pa.string()), ("dateTime", UTC_MS), ("extra", pa.string())]
    )  # fmt: skip
    assert AUCTION == pa.schema(
        [("id", pa.int64()), ("itemName", pa.string()), ("description", pa.string()), ("initialBid", pa.int64()),
         ("reserve", pa.int64()), ("dateTime", UTC_MS), ("expires", UTC_MS), ("seller", pa.int64()),
         ("category", pa.int64()), ("extra", pa.string())]
    )  # fmt: skip
    assert BID == pa.schema(
        [("auction", pa.int64()), ("bidder", pa.int64()), ("price", pa.int64()), ("channel", pa.string()),
         ("url", pa.string()), ("dateTime", UTC_MS), ("extra", pa.string())]
    )  # fmt: skip
    tables = nexmark_tables(NexmarkConfig(events=1000))
    assert [tables[k].schema for k in ("person", "auction", "bid")] == [PERSON, AUCTION, BID]


def test_every_50_ids_hold_1_person_3_auctions_46_bids_at_fixed_offsets():
    config = NexmarkConfig(events=10_000, **ONE_PER_MS)
    for start in (0, 50, 4950, 9950):
        assert tuple(b.num_rows for b in generate_block(config, start, 50)) == (1, 3, 46)
    tables = nexmark_tables(config)
    assert {k: t.num_rows for k, t in tables.items()} == {"person": 200, "auction": 600, "bid": 9200}
    # The kind is decided by id % 50: person at 0, auctions at 1..3, bids at 4..49.
    assert set(numbers(config, tables["person"]) % 50) == {0}
    assert set(numbers(config, tables["auction"]) % 50) == {1, 2, 3}
    assert set(numbers(config, tables["bid"]) % 50) == set(range(4, 50))


def test_other_proportions_and_first_event_id():
    config = NexmarkConfig(events=1000, first_event_id=100, person_proportion=2, auction_proportion=3, bid_proportion=5)
    persons, auctions, bids = generate_block(config, 100, 1000)
    assert (persons.num_rows, auctions.num_rows, bids.num_rows) == (200, 300, 500)
    # Ids follow the event id: event 100 is the first of epoch 10, so persons start at 20.
    assert persons["id"].to_pylist() == list(range(FIRST_PERSON_ID + 20, FIRST_PERSON_ID + 220))
    assert auctions["id"].to_pylist() == list(range(FIRST_AUCTION_ID + 30, FIRST_AUCTION_ID + 330))


def test_same_seed_same_events_and_another_seed_others():
    config = NexmarkConfig(events=20_000, batch_size=3000)
    first, again = nexmark_tables(config), nexmark_tables(config)
    assert all(first[k].equals(again[k]) for k in first)
    other = nexmark_tables(NexmarkConfig(events=20_000, batch_size=3000, seed=1))
    assert not first["bid"].equals(other["bid"])
    assert first["bid"]["dateTime"].equals(other["bid"]["dateTime"])


def test_an_event_depends_on_its_id_only_not_on_blocks_or_partitions():
    config = NexmarkConfig(events=20_000, batch_size=1000)
    whole = nexmark_tables(config)
    assert all(nexmark_tables(NexmarkConfig(events=20_000, batch_size=777))[k].equals(whole[k]) for k in whole)
    # A block on its own gives the rows of those ids in the whole stream.
    _, auctions, bids = generate_block(config, 5000, 100)
    assert bids.equals(whole["bid"].slice(5000 // 50 * 46, 92).combine_chunks().to_batches()[0])
    assert auctions["id"].to_pylist() == [FIRST_AUCTION_ID + i for i in range(300, 306)]
    for kind in whole:
        one = read(NexmarkSource(kind, config))
        assert one.equals(whole[kind])
        parts = pa.concat_tables(read(NexmarkSource(kind, config), p, 3) for p in range(3))
        keys = [(name, "ascending") for name in one.column_names]
        assert parts.sort_by(keys).equals(one.sort_by(keys))


def test_person_and_auction_ids_are_consecutive():
    tables = nexmark_tables(NexmarkConfig(events=50_000, batch_size=7000))
    assert tables["person"]["id"].to_pylist() == list(range(FIRST_PERSON_ID, FIRST_PERSON_ID + 1000))
    assert tables["auction"]["id"].to_pylist() == list(range(FIRST_AUCTION_ID, FIRST_AUCTION_ID + 3000))


def test_bids_and_auctions_refer_to_people_and_auctions_created_so_far_or_the_reference_lead():
    config = NexmarkConfig(events=100_000, **ONE_PER_MS)
    tables = nexmark_tables(config)
    bids, auctions = tables["bid"], tables["auction"]
    ids = numbers(config, bids)
    auction = bids["auction"].to_numpy() - FIRST_AUCTION_ID
    bidder = bids["bidder"].to_numpy() - FIRST_PERSON_ID
    last_auction, last_person = last_auction_id(config, ids), last_person_id(config, ids)
    # The reference lets a bid name an auction or person up to 10 ids ahead of the last created.
    assert (auction >= 0).all() and (auction <= last_auction + AUCTION_ID_LEAD).all()
    assert (bidder >= 0).all() and (bidder <= last_person + PERSON_ID_LEAD).all()
    assert (auction <= last_auction).mean() > 0.95
    # A bid not for the hot auction is for one of the 100 auctions in flight (or the lead).
    hot = auction == last_auction // HOT_ID_STRIDE * HOT_ID_STRIDE
    assert (auction[~hot] >= last_auction[~hot] - config.num_in_flight_auctions).all()
    # A bidder not hot is one of the 1000 active people (or the lead).
    hot_bidder = bidder == last_person // HOT_ID_STRIDE * HOT_ID_STRIDE + 1
    assert (bidder[~hot_bidder] >= last_person[~hot_bidder] + 1 - config.num_active_people).all()
    seller = auctions["seller"].to_numpy() - FIRST_PERSON_ID
    seller_last = last_person_id(config, numbers(config, auctions))
    assert (seller >= 0).all() and (seller <= seller_last + PERSON_ID_LEAD).all()


def test_hot_auctions_bidders_and_sellers_take_the_reference_shares():
    config = NexmarkConfig(events=200_000, **ONE_PER_MS)
    tables = nexmark_tables(config)
    bids = tables["bid"]
    ids = numbers(config, bids)
    auction = bids["auction"].to_numpy() - FIRST_AUCTION_ID
    # P(hot) = 1 - 1/ratio: 1/2 of the bids for the hot auction, 3/4 by the hot bidder...
    hot_auction = last_auction_id(config, ids) // HOT_ID_STRIDE * HOT_ID_STRIDE
    assert abs((auction == hot_auction).mean() - 1 / 2) < 0.02
    hot_bidder = last_person_id(config, ids) // HOT_ID_STRIDE * HOT_ID_STRIDE + 1
    assert abs((bids["bidder"].to_numpy() - FIRST_PERSON_ID == hot_bidder).mean() - 3 / 4) < 0.02
    auctions = tables["auction"]
    hot_seller = last_person_id(config, numbers(config, auctions)) // HOT_ID_STRIDE * HOT_ID_STRIDE
    assert abs((auctions["seller"].to_numpy() - FIRST_PERSON_ID == hot_seller).mean() - 3 / 4) < 0.03
    # ... so the most frequent auctions take far more than a uniform share.
    counts = np.sort(np.bincount(auction))[::-1]
    top = counts[: len(counts) // 100].sum() / counts.sum()
    assert top > 0.4, f"the top 1% of auctions take {top:.0%} of the bids"


def test_values_come_from_the_reference_domains():
    tables = nexmark_tables(NexmarkConfig(events=100_000))
    persons, auctions, bids = tables["person"], tables["auction"], tables["bid"]
    assert set(persons["state"].to_pylist()) == set(US_STATES)
    assert set(persons["city"].to_pylist()) == set(US_CITIES)
    assert pc.all(pc.match_substring_regex(persons["creditCard"], r"^\d{4} \d{4} \d{4} \d{4}$")).as_py()
    assert pc.all(pc.match_substring_regex(persons["emailAddress"], r"^[a-z ]+@[a-z ]+\.com$")).as_py()
    assert set(auctions["category"].to_pylist()) == {10, 11, 12, 13, 14}
    assert pc.all(pc.greater_equal(auctions["reserve"], auctions["initialBid"])).as_py()
    assert pc.all(pc.greater(auctions["expires"], auctions["dateTime"])).as_py()
    price = bids["price"].to_numpy()
    # Prices are 10 ** (6 u) dollars in cents: log-uniform over [100, 1e8).
    assert price.min() >= 100 and price.max() <= 100_000_000
    assert abs((price < 100 * 10).mean() - 1 / 6) < 0.01 and abs(np.log10(np.median(price)) - 5) < 0.06
    channel = bids["channel"].to_numpy(zero_copy_only=False)
    hot = np.isin(channel, HOT_CHANNELS)
    assert abs(hot.mean() - 1 / 2) < 0.01 and set(channel[hot]) == set(HOT_CHANNELS)
    assert all(c.startswith("channel-") for c in channel[~hot][:100])
    urls = bids["url"].to_numpy(zero_copy_only=False)
    assert all(u.startswith("https://www.nexmark.com/") for u in urls[:100])
    assert pc.all(pc.match_substring(bids["url"].filter(pc.invert(pa.array(hot))), "&channel_id=")).as_py()


def test_auctions_last_about_as_long_as_in_flight_auctions_take_to_appear():
    config = NexmarkConfig(events=100_000)
    auctions = nexmark_tables(config)["auction"]
    length = pc.subtract(auctions["expires"].cast(pa.int64()), auctions["dateTime"].cast(pa.int64())).to_numpy()
    # 100 auctions take 100 * 50 // 3 = 1666 events, 166 or 167 ms at 10,000 events/s; an auction
    # lasts 1 + [0, 2 * that) ms.
    assert length.min() >= 1 and length.max() <= 2 * 167
    assert abs(length.mean() / 167 - 1) < 0.05


def test_timestamps_increase_with_the_rate():
    for rate in (10_000, 2000):
        config = NexmarkConfig(events=50_000, events_per_second=rate)
        tables = nexmark_tables(config)
        times = pa.concat_arrays([t["dateTime"].combine_chunks() for t in tables.values()]).cast(pa.int64()).to_numpy()
        for table in tables.values():
            assert np.all(np.diff(table["dateTime"].cast(pa.int64()).to_numpy()) >= 0)
        # Event n is at base + n * 1000 // rate: 50,000 events span 5 s at 10,000/s, 25 s at 2000/s.
        assert times.min() == config.base_time_ms
        assert times.max() == config.event_time_ms(49_999) == config.base_time_ms + 49_999 * 1000 // rate
        assert config.max_out_of_orderness_ms == 0


def test_out_of_order_groups_shuffle_timestamps_within_a_bound():
    config = NexmarkConfig(events=100_003, out_of_order_group_size=1000, batch_size=3000, **ONE_PER_MS)
    # Within a group of 1000 event numbers, an event lags the latest by at most 999 events: 999 ms.
    assert config.max_out_of_orderness_ms == 999
    tables = nexmark_tables(config)
    for kind, table in tables.items():
        times = table["dateTime"].cast(pa.int64()).to_numpy()
        lag = np.maximum.accumulate(times) - times
        assert lag.max() > 0, kind
        assert lag.max() <= config.max_out_of_orderness_ms, kind
    # Every id is still generated once, the last incomplete group included.
    assert np.array_equal(np.sort(numbers(config, tables["person"])), np.arange(0, 100_003, 50))
    assert sorted(tables["auction"]["id"].to_pylist()) == list(range(FIRST_AUCTION_ID, FIRST_AUCTION_ID + 6002))
    assert len(np.unique(numbers(config, tables["bid"]))) == tables["bid"].num_rows == 100_003 - 2001 - 6002
    # The same events as the ordered stream, in another order.
    ordered = nexmark_tables(NexmarkConfig(events=100_003, **ONE_PER_MS))
    assert tables["bid"].sort_by("dateTime").equals(ordered["bid"].sort_by("dateTime"))


def test_average_sizes_with_extra_are_near_the_configured_ones():
    for person, auction, bid in ((200, 500, 100), (1000, 300, 40)):
        config = NexmarkConfig(events=100_000, avg_person_byte_size=person, avg_auction_byte_size=auction, avg_bid_byte_size=bid)
        tables = nexmark_tables(config)
        assert abs(sizes(tables["person"], 8, ["name", "emailAddress", "creditCard", "city", "state"]).mean() / person - 1) < 0.02
        assert abs(sizes(tables["auction"], 48, ["itemName", "description"]).mean() / auction - 1) < 0.02
        bid_sizes = sizes(tables["bid"], 32, [])
        assert abs(bid_sizes.mean() / bid - 1) < 0.02
        # The padding varies by +-20 % of what is left to the average.
        assert bid_sizes.min() < bid and bid_sizes.max() > bid
    small = nexmark_tables(NexmarkConfig(events=1000, avg_bid_byte_size=10))
    assert set(pc.binary_length(small["bid"]["extra"]).to_pylist()) == {0}


def test_source_ends_after_the_configured_events():
    config = NexmarkConfig(events=1234, batch_size=100)
    for kind, rows in (("person", 25), ("auction", 75), ("bid", 1134)):
        source = NexmarkSource(kind, config)
        assert source.schema == {"person": PERSON, "auction": AUCTION, "bid": BID}[kind]
        assert read(source).num_rows == rows
        assert source.poll() is END_OF_INPUT
        assert sum(read(NexmarkSource(kind, config), p, 4).num_rows for p in range(4)) == rows
    # A partition beyond the last block ends at once.
    assert read(NexmarkSource("bid", config), 20, 21).num_rows == 0


def test_unbounded_source_keeps_going():
    source = NexmarkSource("person", NexmarkConfig(events=None, batch_size=1000))
    source.open(1, 2)
    batches = [source.poll() for _ in range(5)]
    assert [b.num_rows for b in batches] == [20] * 5
    assert batches[-1]["id"][0].as_py() == FIRST_PERSON_ID + 9 * 20
    with pytest.raises(OptionError, match="events"):
        nexmark_tables(NexmarkConfig(events=None))


def test_options_are_checked():
    with pytest.raises(OptionError, match="kind"):
        NexmarkSource("bids", NexmarkConfig())
    with pytest.raises(OptionError, match="events"):
        NexmarkConfig(events=-1)
    with pytest.raises(OptionError, match="out_of_order_group_size"):
        NexmarkConfig(out_of_order_group_size=0)
    with pytest.raises(OptionError, match="batch_size"):
        NexmarkConfig(batch_size=2.5)
    with pytest.raises(OptionError, match="count"):
        generate_block(NexmarkConfig(events=100), 50, 51)
    with pytest.raises(OptionError, match="partition"):
        NexmarkSource("bid", NexmarkConfig()).open(3, 3)


def test_groups_of_a_multiple_of_the_shuffle_multiplier_lose_no_id():
    # The reference's shuffle (offset * 953 % size) repeats ids when 953 divides the group size.
    config = NexmarkConfig(events=5000, out_of_order_group_size=2 * 953, **ONE_PER_MS)
    tables = nexmark_tables(config)
    every = np.sort(np.concatenate([numbers(config, t) for t in tables.values()]))
    assert np.array_equal(every, np.arange(5000))


def test_an_empty_block_has_the_schemas():
    blocks = generate_block(NexmarkConfig(events=10), 5, 0)
    assert [b.num_rows for b in blocks] == [0, 0, 0]
    assert [b.schema for b in blocks] == [PERSON, AUCTION, BID]
