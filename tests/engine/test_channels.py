"""Channel writer (micro-batching, linger, credits) and reorder buffer, without Ray."""

import msgpack
import pyarrow as pa
import pytest

from engine import ChannelOptions, OptionError
from engine.channels import BATCH, END, WATERMARK, ChannelWriter, ReorderBuffer, decode_frame
from engine.errors import CitystreamError
from engine.task import EndOfStream, Watermark


def batch(start, rows):
    return pa.record_batch({"v": list(range(start, start + rows))})


class FakeReceiver:
    """Frames sent, and acknowledgements given one at a time when the writer waits."""

    def __init__(self):
        self.frames = []
        self.waits = 0

    def send(self, seq, batches, control):
        self.frames.append((seq, batches, control))
        return seq

    def wait(self, in_flight):
        self.waits += 1
        return in_flight[:1], in_flight[1:]

    def messages(self):
        out = []
        for _, batches, control in self.frames:
            out += decode_frame(batches, control)
        return out


def writer(clock=lambda: 0.0, event_time=None, **options):
    receiver = FakeReceiver()
    return ChannelWriter(ChannelOptions(**options), receiver.send, receiver.wait, event_time, clock), receiver


def values(messages):
    out = []
    for m in messages:
        out.append(m.column("v").to_pylist() if isinstance(m, pa.RecordBatch) else m)
    return out


def test_small_batches_are_merged_until_the_frame_is_full():
    w, rx = writer(batch_rows=10, linger_ms=1000)
    for start in range(0, 12, 3):
        w.write(batch(start, 3))
    # 3+3+3 = 9 rows wait; the fourth batch would exceed 10 rows, so the 9 go first.
    assert len(rx.frames) == 1
    assert values(rx.messages()) == [list(range(9))]
    assert w.pending


def test_large_batches_are_sliced_into_full_frames_without_merging():
    w, rx = writer(batch_rows=4, linger_ms=1000)
    w.write(batch(0, 10))
    assert values(rx.messages()) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    w.flush()
    assert values(rx.messages())[-1] == [8, 9]


def test_control_messages_keep_their_place_between_batches():
    w, rx = writer(batch_rows=100, linger_ms=1000)
    w.write(batch(0, 2))
    w.write(Watermark(5))
    w.write(Watermark(7))  # replaces the pending watermark: only the latest matters
    w.write(batch(2, 2))
    w.write(EndOfStream())  # ends the stream: sent at once
    assert len(rx.frames) == 1
    assert values(rx.messages()) == [[0, 1], Watermark(7), [2, 3], EndOfStream()]
    _, _, control = rx.frames[0]
    assert msgpack.unpackb(control) == [[BATCH, 0], [WATERMARK, 7], [BATCH, 1], [END, 0]]


def test_a_batch_merges_across_a_watermark_only_if_none_of_its_rows_is_late_for_it():
    w, rx = writer(event_time="v", batch_rows=100, linger_ms=1000)
    w.write(batch(0, 2))
    w.write(Watermark(1))
    w.write(batch(2, 2))  # rows 2, 3: not late for watermark 1, so one batch
    w.write(Watermark(3))
    w.write(batch(1, 1))  # row 1 is late for watermark 3: it must stay behind it
    w.write(Watermark(3))
    w.write(batch(3, 0))  # empty: dropped
    w.flush()
    assert values(rx.messages()) == [[0, 1, 2, 3], Watermark(3), [1], Watermark(3)]


def test_a_frame_that_is_not_full_goes_when_it_has_lingered():
    now = [0.0]
    w, rx = writer(clock=lambda: now[0], batch_rows=100, linger_ms=5)
    w.write(batch(0, 1))
    assert w.deadline == pytest.approx(0.005)
    now[0] = 0.004
    assert not w.due(now[0])
    now[0] = 0.005
    assert w.due(now[0])
    w.flush()
    assert len(rx.frames) == 1 and not w.pending and w.deadline is None


def test_the_writer_waits_when_its_credits_are_used_up():
    w, rx = writer(credits=2, batch_rows=1, linger_ms=0)
    for start in range(5):
        w.write(batch(start, 1))
    assert len(rx.frames) == 5
    # Two frames go on credit; each further frame waits for one acknowledgement.
    assert rx.waits == 3
    assert len(w.in_flight) == 2 and w.stats.max_in_flight == 2
    w.drain()
    assert w.in_flight == [] and w.stats.frames == 5 and w.stats.rows == 5
    assert [seq for seq, _, _ in rx.frames] == [0, 1, 2, 3, 4]


def test_channel_options_are_checked():
    with pytest.raises(OptionError, match="credits"):
        ChannelOptions(credits=0)
    with pytest.raises(OptionError, match="batch_rows"):
        ChannelOptions(batch_rows=0)
    with pytest.raises(OptionError, match="linger_ms"):
        ChannelOptions(linger_ms=-1)


def test_reorder_buffer_restores_sequence_order_per_channel():
    buffer = ReorderBuffer(2)
    assert buffer.arrive(0, 1, "b") == []
    assert buffer.arrive(1, 0, "x") == ["x"]
    assert buffer.arrive(0, 2, "c") == []
    assert buffer.arrive(0, 0, "a") == ["a", "b", "c"]
    assert buffer.arrive(0, 3, "d") == ["d"]
    assert buffer.reordered == 2


def test_reorder_buffer_refuses_a_repeated_frame():
    buffer = ReorderBuffer(1)
    buffer.arrive(0, 0, "a")
    with pytest.raises(CitystreamError, match="arrived twice"):
        buffer.arrive(0, 0, "a")
