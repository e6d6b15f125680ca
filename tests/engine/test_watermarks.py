"""Watermark generation (bounded out-of-orderness) and tracking over input channels."""

import pyarrow as pa

from engine.timeutil import EVENT_TIME_TYPE, MAX_WATERMARK, MIN_WATERMARK
from engine.watermarks import BoundedOutOfOrderness, WatermarkTracker


def times(*millis):
    return pa.array(list(millis), pa.int64()).cast(EVENT_TIME_TYPE)


# ---- BoundedOutOfOrderness -------------------------------------------------------------------


def test_bounded_out_of_orderness_is_max_minus_bound_minus_one():
    generator = BoundedOutOfOrderness(100)
    assert generator.current == MIN_WATERMARK
    assert generator.observe(times(1000, 1500, 1200)) == 1399
    assert generator.current == 1399


def test_bounded_out_of_orderness_only_reports_an_advance():
    generator = BoundedOutOfOrderness(0)
    assert generator.observe(times(1000)) == 999
    assert generator.observe(times(500, 1000)) is None  # nothing newer: no new watermark
    assert generator.current == 999
    assert generator.observe(times()) is None  # empty batch
    assert generator.observe(pa.array([None], EVENT_TIME_TYPE)) is None  # only nulls
    assert generator.observe(times(1001)) == 1000


# ---- WatermarkTracker ------------------------------------------------------------------------


def test_tracker_is_the_minimum_over_channels():
    tracker = WatermarkTracker(3)
    assert tracker.on_watermark(0, 100, now=0) is None  # the others are still at MIN
    assert tracker.on_watermark(1, 50, now=0) is None
    assert tracker.current == MIN_WATERMARK
    assert tracker.on_watermark(2, 70, now=0) == 50
    assert tracker.current == 50
    assert tracker.on_watermark(1, 200, now=0) == 70
    assert tracker.on_watermark(2, 300, now=0) == 100


def test_tracker_never_moves_backwards():
    tracker = WatermarkTracker(2)
    tracker.on_watermark(0, 100, now=0)
    assert tracker.on_watermark(1, 100, now=0) == 100
    # A channel's own watermark going back is ignored.
    assert tracker.on_watermark(0, 10, now=0) is None
    assert tracker.current == 100
    assert tracker.on_watermark(1, 150, now=0) is None  # channel 0 is still at 100
    assert tracker.on_watermark(0, 120, now=0) == 120


def test_ended_channel_counts_as_max():
    tracker = WatermarkTracker(2)
    tracker.on_watermark(0, 100, now=0)
    assert tracker.on_end(1, now=0) == 100  # only channel 0 holds it now
    assert not tracker.all_ended()
    assert tracker.on_watermark(0, 500, now=0) == 500
    assert tracker.on_end(0, now=0) == MAX_WATERMARK
    assert tracker.all_ended()


def test_without_idle_timeout_a_silent_channel_holds_the_watermark_forever():
    tracker = WatermarkTracker(2)
    tracker.on_watermark(1, 0, now=0.0)
    tracker.on_watermark(0, 1000, now=1000.0)
    assert tracker.current == 0
    assert tracker.on_tick(now=10_000.0) is None
    assert tracker.idle_channels(now=10_000.0) == []


def test_idle_channel_is_excluded_after_idle_timeout():
    tracker = WatermarkTracker(2, idle_timeout_s=1.0)
    tracker.on_watermark(0, 100, now=0.0)
    tracker.on_watermark(1, 50, now=0.0)
    assert tracker.current == 50
    # Channel 0 keeps speaking, channel 1 goes silent.
    assert tracker.on_watermark(0, 300, now=0.5) is None  # channel 1 not idle yet (0.5 s)
    assert tracker.idle_channels(now=0.9) == []
    assert tracker.on_tick(now=0.9) is None
    assert tracker.on_watermark(0, 400, now=0.99) is None
    assert tracker.idle_channels(now=1.0) == [1]
    assert tracker.on_tick(now=1.0) == 400  # channel 1 no longer holds it back
    assert tracker.on_watermark(0, 600, now=1.2) == 600


def test_activity_without_a_watermark_keeps_a_channel_from_being_idle():
    tracker = WatermarkTracker(2, idle_timeout_s=1.0)
    tracker.on_watermark(0, 100, now=0.0)
    tracker.on_watermark(1, 50, now=0.0)
    tracker.on_activity(1, now=0.8)  # a batch arrived, no new watermark
    tracker.on_watermark(0, 300, now=1.5)
    assert tracker.idle_channels(now=1.5) == []
    assert tracker.current == 50
    assert tracker.on_tick(now=1.8) == 300  # idle since 0.8


def test_idle_channel_is_back_in_when_it_speaks_again():
    tracker = WatermarkTracker(2, idle_timeout_s=1.0)
    tracker.on_watermark(0, 100, now=0.0)
    tracker.on_watermark(1, 50, now=0.0)
    assert tracker.on_watermark(0, 1000, now=2.0) == 1000  # channel 1 idle
    # Channel 1 speaks again, behind: it does not pull the watermark back...
    assert tracker.on_watermark(1, 700, now=2.1) is None
    assert tracker.current == 1000
    assert tracker.idle_channels(now=2.1) == []
    # ...but it holds it back again from now on.
    assert tracker.on_watermark(0, 2000, now=2.2) is None
    assert tracker.current == 1000
    assert tracker.on_watermark(1, 1500, now=2.3) == 1500
    assert tracker.current == 1500


def test_all_channels_idle_holds_the_watermark():
    tracker = WatermarkTracker(2, idle_timeout_s=1.0)
    tracker.on_watermark(0, 100, now=0.0)
    tracker.on_watermark(1, 50, now=0.0)
    assert tracker.on_tick(now=5.0) is None
    assert tracker.current == 50
    # The first to speak again carries it; the other is still idle.
    assert tracker.on_watermark(0, 200, now=5.1) == 200


def test_idle_clock_starts_with_the_first_activity():
    # A task may start long before its inputs send anything (actors start one after the
    # other): a channel that has not spoken yet is idle only a timeout after the first one did,
    # so that its first rows are not late.
    tracker = WatermarkTracker(2, idle_timeout_s=1.0)
    assert tracker.on_tick(now=50.0) is None
    assert tracker.idle_channels(now=50.0) == []
    assert tracker.on_watermark(0, 100, now=50.0) is None  # channel 1 holds it back
    assert tracker.idle_channels(now=50.9) == []
    assert tracker.on_watermark(1, 80, now=50.5) == 80
    assert tracker.on_watermark(0, 200, now=51.4) is None
    assert tracker.on_tick(now=51.6) == 200  # channel 1 silent since 50.5


def test_ended_channel_is_never_idle():
    tracker = WatermarkTracker(2, idle_timeout_s=1.0)
    tracker.on_end(0, now=0.0)
    assert tracker.idle_channels(now=10.0) == [1]


def test_idle_channel_speaks_again_after_the_other_ended():
    tracker = WatermarkTracker(2, idle_timeout_s=1.0)
    tracker.on_watermark(0, 100, now=0.0)
    tracker.on_watermark(1, 50, now=0.0)
    assert tracker.on_watermark(0, 1000, now=2.0) == 1000  # channel 1 idle
    # Channel 0 ends while channel 1 is idle: channel 1 may still send, so no jump to MAX.
    assert tracker.on_end(0, now=2.5) is None
    assert tracker.current == 1000
    assert not tracker.all_ended()
    # Channel 1 speaks again: it carries the watermark from now on.
    assert tracker.on_watermark(1, 1500, now=3.0) == 1500
    assert tracker.on_watermark(1, 2500, now=3.5) == 2500
    assert tracker.on_end(1, now=4.0) == MAX_WATERMARK
