"""Nexmark event generator: persons, auctions and bids as Arrow record batches, built with numpy.

It follows the semantics of the reference generator (Apache Beam's and Flink's nexmark
``GeneratorConfig``, ``PersonGenerator``, ``AuctionGenerator``, ``BidGenerator``), written anew
and vectorised: a block of event ids becomes three record batches without a Python loop per event.

* Event ``id`` decides the kind: ``id % 50`` below ``person_proportion`` is a person, below
  ``person_proportion + auction_proportion`` an auction, otherwise a bid (1 : 3 : 46).
* Event number ``n`` (the position in the stream, from 0) has id ``first_event_id + n`` and
  timestamp ``base_time_ms + n * 1000 // events_per_second``. With ``out_of_order_group_size``
  g > 1, the stream is emitted in groups of g consecutive numbers, permuted within the group
  as the reference does (``base + offset * 953 % g``): the stream is out of order by at most
  ``NexmarkConfig.max_out_of_orderness_ms``.
* Person and auction ids follow from the event id (the last person / auction created so far,
  from ``FIRST_PERSON_ID`` / ``FIRST_AUCTION_ID`` = 1000 as in the reference). Sellers and
  bidders are hot people with probability ``1 - 1 / hot_*_ratio`` (the latest person id rounded
  down to a multiple of 100, plus one for bidders), otherwise one of the ``num_active_people``
  latest people, with a lead of 10 ids not created yet; a bid's auction is hot with probability
  ``1 - 1 / hot_auction_ratio``, otherwise one of the ``num_in_flight_auctions`` latest
  auctions (lead of 10).
* The ``extra`` column pads each row so that its size, counted as the reference counts it,
  averages the configured byte size.

Every random value of an event is a hash of ``(seed, event id, draw number)`` (the reference seeds
one ``java.util.Random`` per event id): an event is the same whichever block, batch size or
partition generates it, so any block is reproducible on its own.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Literal, cast, get_args

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import OptionError
from engine.sources import END_OF_INPUT, EndOfInput, Source, strided_place
from engine.timeutil import EVENT_TIME_TYPE

logger = logging.getLogger(__name__)

NexmarkKind = Literal["person", "auction", "bid"]
KINDS: tuple[NexmarkKind, ...] = get_args(NexmarkKind)

PERSON = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("emailAddress", pa.string()),
        ("creditCard", pa.string()),
        ("city", pa.string()),
        ("state", pa.string()),
        ("dateTime", EVENT_TIME_TYPE),
        ("extra", pa.string()),
    ]
)
AUCTION = pa.schema(
    [
        ("id", pa.int64()),
        ("itemName", pa.string()),
        ("description", pa.string()),
        ("initialBid", pa.int64()),
        ("reserve", pa.int64()),
        ("dateTime", EVENT_TIME_TYPE),
        ("expires", EVENT_TIME_TYPE),
        ("seller", pa.int64()),
        ("category", pa.int64()),
        ("extra", pa.string()),
    ]
)
BID = pa.schema(
    [
        ("auction", pa.int64()),
        ("bidder", pa.int64()),
        ("price", pa.int64()),
        ("channel", pa.string()),
        ("url", pa.string()),
        ("dateTime", EVENT_TIME_TYPE),
        ("extra", pa.string()),
    ]
)
SCHEMAS: dict[NexmarkKind, pa.Schema] = {"person": PERSON, "auction": AUCTION, "bid": BID}

# Constants of the reference generator.
FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
NUM_CATEGORIES = 5
PERSON_ID_LEAD = 10
AUCTION_ID_LEAD = 10
# Hot sellers, bidders and auctions are ids rounded down to a multiple of this (the reference's
# HOT_SELLER_RATIO / HOT_BIDDER_RATIO / HOT_AUCTION_RATIO constants, all 100).
HOT_ID_STRIDE = 100
HOT_CHANNELS = ("Google", "Facebook", "Baidu", "Apple")
HOT_CHANNELS_RATIO = 2
NUM_CHANNELS = 10_000
US_STATES = ("AZ", "CA", "ID", "OR", "WA", "WY")
US_CITIES = ("Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne")
FIRST_NAMES = ("Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter")
LAST_NAMES = ("Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris")
# The reference permutes each out-of-order group with this multiplier.
_SHUFFLE_MULTIPLIER = 953

# Bytes the reference counts for the fixed-width fields of each kind (8 per long or timestamp
# it counts); the variable-length strings it counts are added per row. Channel and url are not
# counted, as in Flink's generator, which added them after the sizes were defined.
_PERSON_FIXED_BYTES = 8
_AUCTION_FIXED_BYTES = 8 * 6
_BID_FIXED_BYTES = 8 * 4
_CREDIT_CARD_BYTES = 19

# Size of the prebuilt string pools that item names, descriptions and emails are picked from.
_WORD_POOL_SIZE = 1 << 14
# Variants of each padding length, and the memory the padding pools may take.
_PAD_VARIANTS = 16
_PAD_POOL_BYTES = 32 << 20
_MAX_RANDOM_RANGE = 1 << 31

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_POW_MINUS_32 = 2.0**-32
_LN_10 = math.log(10.0)

Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class NexmarkConfig:
    """The knobs of the Nexmark generator, with the reference generator's defaults.

    Attributes:
        events: Total number of events; None for an unbounded stream.
        seed: Seed of every random value; the same seed gives the same events.
        first_event_id: Id of event number 0.
        base_time_ms: Timestamp of event number 0, in ms since the epoch (default
            2026-01-01T00:00:00Z, fixed so that runs are reproducible).
        events_per_second: Simulated event rate that spaces the timestamps. The default,
            10,000, is Beam's ``firstEventRate`` (100 us between events): 10 million events
            span 1000 s of event time, so windowed queries see many windows. Generation itself
            is not paced; it runs as fast as it can.
        person_proportion: Persons among every ``total_proportion`` consecutive ids.
        auction_proportion: Auctions among every ``total_proportion`` consecutive ids.
        bid_proportion: Bids among every ``total_proportion`` consecutive ids.
        hot_auction_ratio: A bid goes to a hot auction with probability ``1 - 1/ratio``.
        hot_bidder_ratio: A bid comes from a hot bidder with probability ``1 - 1/ratio``.
        hot_seller_ratio: An auction has a hot seller with probability ``1 - 1/ratio``.
        num_active_people: Sellers and bidders that are not hot are among this many latest people.
        num_in_flight_auctions: Bids that are not for a hot auction pick among this many latest
            auctions; an auction lasts on average as long as this many auctions take to appear.
        out_of_order_group_size: Events are emitted in groups of this many consecutive event
            numbers, shuffled within the group; 1 keeps the stream in order.
        avg_person_byte_size: Average size of a person, reached by the ``extra`` padding.
        avg_auction_byte_size: Average size of an auction.
        avg_bid_byte_size: Average size of a bid.
        batch_size: Event ids per generated block (a source batch holds the rows of one kind).

    Example:
        >>> config = NexmarkConfig(events=1000, events_per_second=1000)
        >>> config.total_proportion, config.event_time_ms(1000) - config.base_time_ms
        (50, 1000)
    """

    events: int | None = 10_000_000
    seed: int = 0
    first_event_id: int = 0
    base_time_ms: int = 1_767_225_600_000
    events_per_second: int = 10_000
    person_proportion: int = 1
    auction_proportion: int = 3
    bid_proportion: int = 46
    hot_auction_ratio: int = 2
    hot_bidder_ratio: int = 4
    hot_seller_ratio: int = 4
    num_active_people: int = 1000
    num_in_flight_auctions: int = 100
    out_of_order_group_size: int = 1
    avg_person_byte_size: int = 200
    avg_auction_byte_size: int = 500
    avg_bid_byte_size: int = 100
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        minimums = {
            "seed": None,
            "first_event_id": 0,
            "base_time_ms": None,
            "events_per_second": 1,
            "person_proportion": 1,
            "auction_proportion": 1,
            "bid_proportion": 0,
            "hot_auction_ratio": 1,
            "hot_bidder_ratio": 1,
            "hot_seller_ratio": 1,
            "num_active_people": 1,
            "num_in_flight_auctions": 1,
            "out_of_order_group_size": 1,
            "avg_person_byte_size": 0,
            "avg_auction_byte_size": 0,
            "avg_bid_byte_size": 0,
            "batch_size": 1,
        }
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "events":
                if value is not None and (not _is_int(value) or value < 0):
                    raise OptionError("events", value, "an integer >= 0, or None for an unbounded stream")
                continue
            low = minimums[field.name]
            if not _is_int(value) or (low is not None and value < low):
                raise OptionError(field.name, value, "an integer" + ("" if low is None else f" >= {low}"))
        for name in ("hot_auction_ratio", "hot_bidder_ratio", "hot_seller_ratio", "num_active_people"):
            if getattr(self, name) >= _MAX_RANDOM_RANGE:
                raise OptionError(name, getattr(self, name), f"an integer < {_MAX_RANDOM_RANGE}")

    @property
    def total_proportion(self) -> int:
        """Length of the cycle of ids over which the proportions hold (50 by default)."""
        return self.person_proportion + self.auction_proportion + self.bid_proportion

    @property
    def max_out_of_orderness_ms(self) -> int:
        """How far behind the latest timestamp emitted an event's timestamp can be.

        An event is only displaced within its group of ``out_of_order_group_size`` event
        numbers, so the lag is at most ``ceil((group - 1) * 1000 / events_per_second)`` ms
        (0 for an ordered stream); a watermark with that bound drops nothing.
        """
        return -(-(self.out_of_order_group_size - 1) * 1000 // self.events_per_second)

    def event_time_ms(self, event_number: int) -> int:
        """Timestamp, in ms since the epoch, of the event with this number (id - first_event_id)."""
        return self.base_time_ms + event_number * 1000 // self.events_per_second


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Random values: counter-based, so that an event's values depend on its id only.


def _mix(z: UInt64Array) -> UInt64Array:
    """SplitMix64's finaliser, in place: a bijective hash of 64-bit words."""
    t = z >> np.uint64(30)
    z ^= t
    z *= _MIX1
    np.right_shift(z, np.uint64(27), out=t)
    z ^= t
    z *= _MIX2
    np.right_shift(z, np.uint64(31), out=t)
    z ^= t
    return z


class _EventRandom:
    """The random values of a set of events: draw k of event i hashes (seed, id_i, k)."""

    def __init__(self, seed: int, ids: Int64Array) -> None:
        seed_key = np.uint64(_mix(np.array([seed & _MASK64], dtype=np.uint64))[0])
        self._state = _mix(ids.astype(np.uint64) * np.uint64(_GAMMA) + seed_key)
        self._counter = 0
        self._spare: UInt64Array | None = None

    def bits32(self) -> UInt64Array:
        """32 random bits per event (as uint64 values below 2**32)."""
        if self._spare is not None:
            bits, self._spare = self._spare, None
            return bits
        self._counter += 1
        word = _mix(self._state + np.uint64(self._counter * _GAMMA & _MASK64))
        self._spare = word >> np.uint64(32)
        return word & _LOW32

    def below(self, bound: int | Int64Array) -> Int64Array:
        """A random integer in [0, bound) per event (0 where bound is 0); bound < 2**32."""
        scaled = self.bits32() * np.asarray(bound, dtype=np.uint64)
        return (scaled >> np.uint64(32)).astype(np.int64)

    def chance(self, ratio: int) -> npt.NDArray[np.bool_]:
        """True with probability ``1 - 1/ratio``: the reference's ``nextInt(ratio) > 0``."""
        return self.below(ratio) > 0

    def uniform(self) -> npt.NDArray[np.float64]:
        """A random float in [0, 1) per event."""
        return self.bits32().astype(np.float64) * _TWO_POW_MINUS_32

    def price(self) -> Int64Array:
        """A price in cents, log-uniform from $1 to $1,000,000: round(10 ** (u * 6) * 100)."""
        return np.floor(np.exp(self.uniform() * (6.0 * _LN_10)) * 100.0 + 0.5).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# String pools: strings are picked from prebuilt pools with numpy indices and ``take``.


@dataclass(frozen=True)
class _StringPool:
    """Strings to pick from, with their byte lengths."""

    values: pa.StringArray
    lengths: Int64Array

    @classmethod
    def of(cls, values: pa.Array) -> _StringPool:
        lengths = pc.binary_length(values).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(values, lengths)

    def take(self, indices: Int64Array) -> pa.Array:
        return self.values.take(indices)


@dataclass(frozen=True)
class _PaddingPool:
    """Padding strings of every length in [shortest, longest], ``variants`` of each length."""

    values: pa.StringArray
    shortest: int
    variants: int

    def take(self, lengths: Int64Array, variant: Int64Array) -> pa.Array:
        return self.values.take((lengths - self.shortest) * self.variants + variant)


@dataclass(frozen=True)
class _Pools:
    names: _StringPool
    emails: _StringPool
    cities: _StringPool
    states: _StringPool
    item_names: _StringPool
    descriptions: _StringPool
    channels: pa.StringArray
    urls: pa.StringArray
    person_padding: _PaddingPool
    auction_padding: _PaddingPool
    bid_padding: _PaddingPool


def _strings_from_bytes(lengths: Int64Array, data: npt.NDArray[np.uint8]) -> pa.StringArray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data))


def _random_letters(rng: np.random.Generator, size: int) -> npt.NDArray[np.uint8]:
    return (rng.integers(0, 26, size, dtype=np.uint8) + ord("a")).astype(np.uint8)


def _random_words(rng: np.random.Generator, count: int, min_length: int, max_length: int) -> pa.StringArray:
    """The reference's ``nextString``: lowercase letters, one in 13 a space, never at the ends."""
    lengths = rng.integers(min_length, max_length, count, dtype=np.int64)
    data = _random_letters(rng, int(lengths.sum()))
    data[rng.integers(0, 13, len(data)) == 0] = ord(" ")
    ends = np.cumsum(lengths)
    data[ends - lengths] = _random_letters(rng, count)
    data[ends - 1] = _random_letters(rng, count)
    return _strings_from_bytes(lengths, data)


def _extra_lengths(current: Int64Array, average: int, random: _EventRandom) -> Int64Array:
    """The reference's ``nextExtra`` length: what is left to the average, +-20 %, never < 0."""
    target = average - current
    delta = np.floor(target * 0.2 + 0.5).astype(np.int64)
    lengths = target - delta + random.below(np.maximum(2 * delta, 0))
    return np.where(current > average, 0, lengths)


def _padding_pool(rng: np.random.Generator, shortest_row: int, longest_row: int, average: int) -> _PaddingPool:
    """Padding of every length ``_extra_lengths`` can ask for rows of these sizes."""
    current = np.arange(shortest_row, longest_row + 1, dtype=np.int64)
    target = average - current
    delta = np.floor(target * 0.2 + 0.5).astype(np.int64)
    low = np.where(current > average, 0, target - delta)
    high = np.where(current > average, 0, target + np.maximum(delta - 1, 0))
    shortest, longest = int(low.min()), int(high.max())
    pad_lengths = np.arange(shortest, longest + 1, dtype=np.int64)
    variants = int(np.clip(_PAD_POOL_BYTES // max(int(pad_lengths.sum()), 1), 1, _PAD_VARIANTS))
    lengths = np.repeat(pad_lengths, variants)
    variant = np.tile(np.arange(variants), len(pad_lengths))
    # Padding of length L, variant v, is the first L letters of the random text of variant v.
    texts = _random_letters(rng, variants * max(longest, 1)).reshape(variants, max(longest, 1))
    starts = np.cumsum(lengths) - lengths
    position = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)
    data = texts[np.repeat(variant, lengths), position]
    return _PaddingPool(_strings_from_bytes(lengths, data), shortest, variants)


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


@lru_cache(maxsize=8)
def _pools(seed: int, avg_person: int, avg_auction: int, avg_bid: int) -> _Pools:
    """The pools of a configuration, built once (a memo of a pure function of its arguments)."""
    rng = np.random.default_rng([seed & _MASK64, 0x4E584D4B])
    names = _StringPool.of(pa.array([f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]))
    local = _random_words(rng, _WORD_POOL_SIZE, 3, 7)
    domain = _random_words(rng, _WORD_POOL_SIZE, 3, 5)
    emails = _StringPool.of(_join(local, "@", domain, ".com"))
    cities = _StringPool.of(pa.array(US_CITIES))
    states = _StringPool.of(pa.array(US_STATES))
    item_names = _StringPool.of(_random_words(rng, _WORD_POOL_SIZE, 3, 20))
    descriptions = _StringPool.of(_random_words(rng, _WORD_POOL_SIZE, 3, 100))

    def url_paths(count: int) -> pa.Array:
        words = [pc.replace_substring(_random_words(rng, count, 3, 5), " ", "_") for _ in range(3)]
        return _join("https://www.nexmark.com/", words[0], "/", words[1], "/", words[2], "/item.htm?query=1")

    # Channels 0..3 are the hot ones; the others are channel-0 .. channel-9999.
    numbers = pc.cast(pa.array(np.arange(NUM_CHANNELS, dtype=np.int64)), pa.string())
    channels = pa.concat_arrays([pa.array(HOT_CHANNELS), _join("channel-", numbers)])
    urls = pa.concat_arrays([url_paths(len(HOT_CHANNELS)), _join(url_paths(NUM_CHANNELS), "&channel_id=", numbers)])

    person_sizes = [pool.lengths for pool in (names, emails, cities, states)]
    person_fixed = _PERSON_FIXED_BYTES + _CREDIT_CARD_BYTES
    auction_sizes = [item_names.lengths, descriptions.lengths]
    return _Pools(
        names=names,
        emails=emails,
        cities=cities,
        states=states,
        item_names=item_names,
        descriptions=descriptions,
        channels=channels,
        urls=urls,
        person_padding=_padding_pool(
            rng,
            person_fixed + sum(int(s.min()) for s in person_sizes),
            person_fixed + sum(int(s.max()) for s in person_sizes),
            avg_person,
        ),
        auction_padding=_padding_pool(
            rng,
            _AUCTION_FIXED_BYTES + sum(int(s.min()) for s in auction_sizes),
            _AUCTION_FIXED_BYTES + sum(int(s.max()) for s in auction_sizes),
            avg_auction,
        ),
        bid_padding=_padding_pool(rng, _BID_FIXED_BYTES, _BID_FIXED_BYTES, avg_bid),
    )


def _pools_of(config: NexmarkConfig) -> _Pools:
    return _pools(config.seed, config.avg_person_byte_size, config.avg_auction_byte_size, config.avg_bid_byte_size)


# ---------------------------------------------------------------------------------------------
# Ids and timestamps, as functions of the event id.


def last_person_id(config: NexmarkConfig, event_ids: Int64Array) -> Int64Array:
    """Base-0 id of the last person created at or before each event id (-1 before the first).

    Example:
        >>> import numpy as np
        >>> last_person_id(NexmarkConfig(), np.array([0, 1, 49, 50, 120])).tolist()
        [0, 0, 0, 1, 2]
    """
    epoch, offset = np.divmod(event_ids, config.total_proportion)
    return epoch * config.person_proportion + np.minimum(offset, config.person_proportion - 1)


def last_auction_id(config: NexmarkConfig, event_ids: Int64Array) -> Int64Array:
    """Base-0 id of the last auction created at or before each event id (-1 before the first).

    Example:
        >>> import numpy as np
        >>> last_auction_id(NexmarkConfig(), np.array([0, 1, 3, 4, 50, 51])).tolist()
        [-1, 0, 2, 2, 2, 3]
    """
    epoch, offset = np.divmod(event_ids, config.total_proportion)
    persons, auctions = config.person_proportion, config.auction_proportion
    # Before this epoch's auctions (at a person), the last auction is the previous epoch's last.
    return epoch * auctions + np.clip(offset - persons, -1, auctions - 1)


def _random_person(config: NexmarkConfig, event_ids: Int64Array, random: _EventRandom) -> Int64Array:
    """The reference's ``nextBase0PersonId``: one of the active people, or a few ids ahead."""
    people = last_person_id(config, event_ids) + 1
    active = np.minimum(people, config.num_active_people)
    return people - active + random.below(active + PERSON_ID_LEAD)


def _random_auction(config: NexmarkConfig, event_ids: Int64Array, random: _EventRandom) -> Int64Array:
    """The reference's ``nextBase0AuctionId``: one of the auctions in flight, or a few ahead."""
    last = last_auction_id(config, event_ids)
    lowest = np.maximum(last - config.num_in_flight_auctions, 0)
    return lowest + random.below(last - lowest + 1 + AUCTION_ID_LEAD)


def _coprime_multiplier(group: int) -> int:
    multiplier = _SHUFFLE_MULTIPLIER
    while math.gcd(multiplier, group) != 1:
        multiplier += 1
    return multiplier


def _emitted_event_numbers(config: NexmarkConfig, start: int, count: int) -> Int64Array:
    """Event numbers emitted at stream positions [start, start + count): the positions, each
    group of ``out_of_order_group_size`` shuffled within itself as the reference does."""
    positions = np.arange(start, start + count, dtype=np.int64)
    size = config.out_of_order_group_size
    if size == 1:
        return positions
    offset = positions % size
    base = positions - offset
    group = np.full(count, size, dtype=np.int64)
    multiplier = np.full(count, _coprime_multiplier(size), dtype=np.int64)
    if config.events is not None and config.events % size:
        # The last group is incomplete; shuffle it within itself so that no id is lost.
        last = base >= config.events - config.events % size
        group[last] = config.events % size
        multiplier[last] = _coprime_multiplier(config.events % size)
    return base + offset * multiplier % group


def _timestamps(config: NexmarkConfig, event_numbers: Int64Array) -> Int64Array:
    return config.base_time_ms + event_numbers * 1000 // config.events_per_second


def _time_array(millis: Int64Array) -> pa.Array:
    return pa.array(millis, type=EVENT_TIME_TYPE)


# ---------------------------------------------------------------------------------------------
# One batch of each kind, from the event ids of that kind.


def _credit_cards(random: _EventRandom, count: int) -> pa.StringArray:
    """Four groups of four random digits separated by spaces (``%04d %04d %04d %04d``)."""
    chars = np.full((count, _CREDIT_CARD_BYTES), ord(" "), dtype=np.uint8)
    powers = np.array([1000, 100, 10, 1], dtype=np.int64)
    for group in range(4):
        digits = random.below(10_000)[:, None] // powers % 10 + ord("0")
        chars[:, group * 5 : group * 5 + 4] = digits
    return _strings_from_bytes(np.full(count, _CREDIT_CARD_BYTES, dtype=np.int64), chars.reshape(-1))


def _person_batch(config: NexmarkConfig, pools: _Pools, event_ids: Int64Array) -> pa.RecordBatch:
    random = _EventRandom(config.seed, event_ids)
    count = len(event_ids)
    name = random.below(len(pools.names.lengths))
    email = random.below(len(pools.emails.lengths))
    credit_card = _credit_cards(random, count)
    city = random.below(len(US_CITIES))
    state = random.below(len(US_STATES))
    size = (
        _PERSON_FIXED_BYTES
        + _CREDIT_CARD_BYTES
        + pools.names.lengths[name]
        + pools.emails.lengths[email]
        + pools.cities.lengths[city]
        + pools.states.lengths[state]
    )
    extra = pools.person_padding.take(
        _extra_lengths(size, config.avg_person_byte_size, random), random.below(pools.person_padding.variants)
    )
    times = _timestamps(config, event_ids - config.first_event_id)
    columns = [
        pa.array(last_person_id(config, event_ids) + FIRST_PERSON_ID),
        pools.names.take(name),
        pools.emails.take(email),
        credit_card,
        pools.cities.take(city),
        pools.states.take(state),
        _time_array(times),
        extra,
    ]
    return pa.RecordBatch.from_arrays(columns, schema=PERSON)


def _auction_batch(config: NexmarkConfig, pools: _Pools, event_ids: Int64Array) -> pa.RecordBatch:
    random = _EventRandom(config.seed, event_ids)
    hot_seller = random.chance(config.hot_seller_ratio)
    seller = np.where(
        hot_seller,
        last_person_id(config, event_ids) // HOT_ID_STRIDE * HOT_ID_STRIDE,
        _random_person(config, event_ids, random),
    )
    category = FIRST_CATEGORY_ID + random.below(NUM_CATEGORIES)
    initial_bid = random.price()
    reserve = initial_bid + random.price()
    numbers = event_ids - config.first_event_id
    times = _timestamps(config, numbers)
    # An auction lasts on average as long as num_in_flight_auctions more auctions take to appear.
    events_until_in_flight = config.num_in_flight_auctions * config.total_proportion // config.auction_proportion
    horizon = _timestamps(config, numbers + events_until_in_flight) - times
    expires = times + 1 + random.below(np.maximum(2 * horizon, 1))
    item_name = random.below(len(pools.item_names.lengths))
    description = random.below(len(pools.descriptions.lengths))
    size = _AUCTION_FIXED_BYTES + pools.item_names.lengths[item_name] + pools.descriptions.lengths[description]
    extra = pools.auction_padding.take(
        _extra_lengths(size, config.avg_auction_byte_size, random), random.below(pools.auction_padding.variants)
    )
    columns = [
        pa.array(last_auction_id(config, event_ids) + FIRST_AUCTION_ID),
        pools.item_names.take(item_name),
        pools.descriptions.take(description),
        pa.array(initial_bid),
        pa.array(reserve),
        _time_array(times),
        _time_array(expires),
        pa.array(seller + FIRST_PERSON_ID),
        pa.array(category),
        extra,
    ]
    return pa.RecordBatch.from_arrays(columns, schema=AUCTION)


def _bid_batch(config: NexmarkConfig, pools: _Pools, event_ids: Int64Array) -> pa.RecordBatch:
    random = _EventRandom(config.seed, event_ids)
    hot_auction = random.chance(config.hot_auction_ratio)
    auction = np.where(
        hot_auction,
        last_auction_id(config, event_ids) // HOT_ID_STRIDE * HOT_ID_STRIDE,
        _random_auction(config, event_ids, random),
    )
    hot_bidder = random.chance(config.hot_bidder_ratio)
    # Hot bidders are the second of their stride of people, so they are not the hot sellers.
    bidder = np.where(
        hot_bidder,
        last_person_id(config, event_ids) // HOT_ID_STRIDE * HOT_ID_STRIDE + 1,
        _random_person(config, event_ids, random),
    )
    price = random.price()
    hot_channel = random.chance(HOT_CHANNELS_RATIO)
    channel = np.where(hot_channel, random.below(len(HOT_CHANNELS)), len(HOT_CHANNELS) + random.below(NUM_CHANNELS))
    size = np.full(len(event_ids), _BID_FIXED_BYTES, dtype=np.int64)
    extra = pools.bid_padding.take(
        _extra_lengths(size, config.avg_bid_byte_size, random), random.below(pools.bid_padding.variants)
    )
    columns = [
        pa.array(auction + FIRST_AUCTION_ID),
        pa.array(bidder + FIRST_PERSON_ID),
        pa.array(price),
        pools.channels.take(channel),
        pools.urls.take(channel),
        _time_array(_timestamps(config, event_ids - config.first_event_id)),
        extra,
    ]
    return pa.RecordBatch.from_arrays(columns, schema=BID)


_BATCH_BUILDERS = {"person": _person_batch, "auction": _auction_batch, "bid": _bid_batch}


def _block_event_ids(config: NexmarkConfig, start_id: int, count: int) -> Int64Array:
    start = start_id - config.first_event_id
    if start < 0 or count < 0:
        allowed = f"start_id >= first_event_id ({config.first_event_id}) and count >= 0"
        raise OptionError("start_id, count", (start_id, count), allowed)
    if config.events is not None and start + count > config.events:
        raise OptionError("count", count, f"a block that ends by event id {config.first_event_id + config.events}")
    return config.first_event_id + _emitted_event_numbers(config, start, count)


def _kind_mask(config: NexmarkConfig, event_ids: Int64Array, kind: NexmarkKind) -> npt.NDArray[np.bool_]:
    offset = event_ids % config.total_proportion
    persons_and_auctions = config.person_proportion + config.auction_proportion
    if kind == "person":
        return offset < config.person_proportion
    if kind == "auction":
        return (offset >= config.person_proportion) & (offset < persons_and_auctions)
    return offset >= persons_and_auctions


def generate_block(config: NexmarkConfig, start_id: int, count: int) -> tuple[pa.RecordBatch, pa.RecordBatch, pa.RecordBatch]:
    """The persons, auctions and bids of the ``count`` events emitted from event id ``start_id``.

    The block covers event ids [start_id, start_id + count), in the order they are emitted (with
    ``out_of_order_group_size`` > 1, shuffled within their groups; a group cut by the block's
    end has some ids in the next block). Each event depends only on the configuration and its
    id, so any block is reproducible on its own.

    Args:
        config: The generator's configuration.
        start_id: Id of the first stream position of the block (>= ``config.first_event_id``).
        count: Number of events; the block must end within ``config.events``.

    Returns:
        Record batches with the schemas ``PERSON``, ``AUCTION`` and ``BID``.

    Example:
        >>> persons, auctions, bids = generate_block(NexmarkConfig(events=100), 0, 100)
        >>> persons.num_rows, auctions.num_rows, bids.num_rows
        (2, 6, 92)
        >>> persons.column("id").to_pylist(), auctions.column("id").to_pylist()
        ([1000, 1001], [1000, 1001, 1002, 1003, 1004, 1005])
    """
    event_ids = _block_event_ids(config, start_id, count)
    pools = _pools_of(config)
    person, auction, bid = (
        _BATCH_BUILDERS[kind](config, pools, event_ids[_kind_mask(config, event_ids, kind)]) for kind in KINDS
    )
    return person, auction, bid


def _generate_kind(config: NexmarkConfig, kind: NexmarkKind, start_id: int, count: int) -> pa.RecordBatch:
    event_ids = _block_event_ids(config, start_id, count)
    return _BATCH_BUILDERS[kind](config, _pools_of(config), event_ids[_kind_mask(config, event_ids, kind)])


def _check_kind(kind: str) -> NexmarkKind:
    if kind not in KINDS:
        raise OptionError("kind", kind, " or ".join(repr(k) for k in KINDS))
    return cast(NexmarkKind, kind)


class NexmarkSource(Source):
    """A source of one kind of Nexmark event: the persons, the auctions or the bids.

    The stream is cut in blocks of ``config.batch_size`` event ids; with several partitions,
    partition p generates blocks p, p + n, p + 2n... and returns the rows of its kind of each
    (blocks without any are skipped). After ``config.events`` events, ``poll`` returns
    END_OF_INPUT; with ``events=None`` it never does. Batches are generated as fast as they are
    polled; their timestamps follow ``events_per_second``, not the wall clock.

    Replayable: every event follows from the configuration and its id, so the number of the
    next block is the whole place in the stream.

    Example:
        >>> source = NexmarkSource("auction", NexmarkConfig(events=100, batch_size=50))
        >>> source.open(0, 1)
        >>> source.poll().column("id").to_pylist()
        [1000, 1001, 1002]
        >>> source.poll().num_rows
        3
        >>> source.poll() is END_OF_INPUT
        True
    """

    replayable = True

    def __init__(self, kind: NexmarkKind, config: NexmarkConfig) -> None:
        self.kind = _check_kind(kind)
        self.config = config
        self.schema = SCHEMAS[self.kind]
        self._block = 0
        self._step = 1

    def open(self, partition: int, partitions: int) -> None:
        if partitions < 1 or not 0 <= partition < partitions:
            raise OptionError("partition", (partition, partitions), "0 <= partition < partitions, partitions >= 1")
        self._block = partition
        self._step = partitions

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        config = self.config
        while True:
            start = self._block * config.batch_size
            if config.events is not None and start >= config.events:
                return END_OF_INPUT
            count = config.batch_size if config.events is None else min(config.batch_size, config.events - start)
            self._block += self._step
            batch = _generate_kind(config, self.kind, config.first_event_id + start, count)
            if batch.num_rows:
                return batch

    def snapshot(self) -> Any:
        # The partition count is kept to refuse a restore into another cut of the blocks.
        return {"block": self._block, "partitions": self._step}

    def restore(self, state: Any) -> None:
        self._block = strided_place("NexmarkSource", "block", state["block"], state["partitions"], self._block, self._step)


def nexmark_tables(config: NexmarkConfig) -> dict[NexmarkKind, pa.Table]:
    """All the events of a bounded configuration, in one process, as one table per kind.

    The rows are those that NexmarkSource returns, in the order of one partition. Meant for
    small data: tests and comparisons with other engines.

    Example:
        >>> tables = nexmark_tables(NexmarkConfig(events=500, batch_size=200))
        >>> {kind: table.num_rows for kind, table in tables.items()}
        {'person': 10, 'auction': 30, 'bid': 460}
    """
    if config.events is None:
        raise OptionError("events", None, "a number of events: nexmark_tables needs a bounded stream")
    batches: dict[NexmarkKind, list[pa.RecordBatch]] = {kind: [] for kind in KINDS}
    for start in range(0, config.events, config.batch_size):
        block = generate_block(config, config.first_event_id + start, min(config.batch_size, config.events - start))
        for kind, batch in zip(KINDS, block, strict=True):
            batches[kind].append(batch)
    logger.debug("generated %d nexmark events in %d blocks", config.events, len(batches["bid"]))
    return {kind: pa.Table.from_batches(batches[kind], schema=SCHEMAS[kind]) for kind in KINDS}


def _main() -> None:
    parser = argparse.ArgumentParser(description="Measure the Nexmark generator's speed on one core.")
    parser.add_argument("--events", type=int, default=5_000_000, help="events to generate per measurement")
    parser.add_argument("--batch-size", type=int, default=NexmarkConfig.batch_size, help="event ids per block")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = NexmarkConfig(events=args.events, batch_size=args.batch_size, seed=args.seed)
    _pools_of(config)  # built once per configuration; not part of the steady-state speed
    print(f"{'kind':<8} {'rows':>10} {'seconds':>8} {'events/s':>12} {'rows/s':>12} {'MB/s':>8}")
    for kind in (*KINDS, "all"):
        rows = 0
        nbytes = 0
        began = time.perf_counter()
        if kind == "all":
            for start in range(0, args.events, config.batch_size):
                block = generate_block(config, start, min(config.batch_size, args.events - start))
                rows += sum(batch.num_rows for batch in block)
                nbytes += sum(batch.nbytes for batch in block)
        else:
            source = NexmarkSource(_check_kind(kind), config)
            source.open(0, 1)
            while isinstance(batch := source.poll(), pa.RecordBatch):
                rows += batch.num_rows
                nbytes += batch.nbytes
        seconds = time.perf_counter() - began
        speeds = f"{args.events / seconds:>12,.0f} {rows / seconds:>12,.0f} {nbytes / seconds / 1e6:>8.0f}"
        print(f"{kind:<8} {rows:>10,} {seconds:>8.2f} {speeds}")


if __name__ == "__main__":
    _main()
