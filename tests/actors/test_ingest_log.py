"""The ingest log: offsets across segments, recovery after a crash or a damaged record, release of
old segments, the devices' sequences across a reopen, and one writer at a time."""

import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from actors.ingest_log import IngestLog, OffsetNotLogged
from engine.errors import CitystreamError, OptionError

NAME = "detections"
ROOT = Path(__file__).resolve().parents[2]


def batch(value, rows=3):
    return pa.record_batch({"value": pa.array([value] * rows, pa.int64()), "camera": [f"cam-{value}"] * rows})


def values(records):
    return [record.batch.column(0)[0].as_py() for record in records]


def open_log(tmp_path, **options):
    return IngestLog(tmp_path / "logs", NAME, **options)


def segment_files(tmp_path):
    return sorted(path.name for path in (tmp_path / "logs").glob(f"ingest-{NAME}-*.seg"))


def append_all(tmp_path, count, **options):
    """Appends batches 0..count-1 (device "edge-1", sequence = value + 1); the size of the newest
    segment after each append."""
    sizes = []
    with open_log(tmp_path, **options) as log:
        for value in range(count):
            assert log.append(batch(value), "edge-1", value + 1) == value
            sizes.append(log.segment_paths[-1].stat().st_size)
    return sizes


def test_offsets_count_from_0_across_segments_and_reads_return_each_batch(tmp_path):
    with open_log(tmp_path, segment_bytes=2_000) as log:
        assert (log.first_offset, log.next_offset) == (0, 0)
        offsets = [log.append(batch(value), "edge-1", value + 1) for value in range(12)]
        assert offsets == list(range(12)) and log.next_offset == 12
        record = log.read(5)
        assert (record.offset, record.device, record.batch_sequence) == (5, "edge-1", 6)
        assert record.batch.equals(batch(5))
        assert values(log.read_from(0)) == list(range(12))
        assert values(log.read_from(7, limit=2)) == [7, 8]
        assert list(log.read_from(12)) == []
        with pytest.raises(OffsetNotLogged, match=r"no batch with offset 12 \(it holds offsets 0\.\.11\)"):
            log.read(12)
    files = segment_files(tmp_path)
    assert len(files) > 2
    assert files[0] == f"ingest-{NAME}-{0:020d}.seg"
    # After a reopen the older segments are read from their files (and checked) when needed.
    with open_log(tmp_path, segment_bytes=2_000) as log:
        assert (log.first_offset, log.next_offset) == (0, 12)
        assert values(log.read_from(0)) == list(range(12))
        assert log.append(batch(12)) == 12
        assert log.read(12).device == "" and log.read(12).batch_sequence == 0


def test_a_record_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path):
    with open_log(tmp_path, segment_bytes=100) as log:
        for value in range(3):
            log.append(batch(value, rows=50))
        assert values(log.read_from(0)) == [0, 1, 2]
    assert len(segment_files(tmp_path)) == 3


def test_append_is_on_disk_when_it_returns(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr("actors.log_records.os.fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with open_log(tmp_path) as log:
        synced.clear()
        size = log.segment_paths[-1].stat().st_size
        log.append(batch(1))
        assert len(synced) == 1
        assert log.segment_paths[-1].stat().st_size > size


def test_a_batch_a_device_logged_already_is_skipped_and_others_are_always_logged(tmp_path):
    with open_log(tmp_path) as log:
        assert log.append(batch(1), "edge-1", 1) == 0
        assert log.append(batch(1), "edge-1", 1) is None
        assert log.append(batch(2), "edge-2", 1) == 1
        assert log.append(batch(0), "edge-1", 0) == 2  # no sequence: not deduplicated
        assert log.append(batch(0), "", 5) == 3  # no device: not deduplicated
        assert log.append(batch(3), "edge-1", 7) == 4
        assert log.append(batch(3), "edge-1", 6) is None  # older than the last one
        assert log.device_sequences() == {"edge-1": 7, "edge-2": 1}
        assert log.next_offset == 5


@pytest.mark.parametrize("cut", [3, "all but 5 bytes of the record"])
def test_a_record_cut_short_by_a_crash_is_dropped_with_a_warning_and_appending_continues(tmp_path, caplog, cut):
    sizes = append_all(tmp_path, 4)
    path = tmp_path / "logs" / segment_files(tmp_path)[-1]
    # The process died while writing the last record: only part of it reached the disk.
    keep = sizes[3] - cut if isinstance(cut, int) else sizes[2] + 5
    with open(path, "r+b") as file:
        file.truncate(keep)
    with caplog.at_level(logging.WARNING, logger="actors.ingest_log"), open_log(tmp_path) as log:
        assert values(log.read_from(0)) == [0, 1, 2]
        assert path.stat().st_size == sizes[2]
        assert f"{keep - sizes[2]} bytes dropped" in caplog.text and str(path) in caplog.text
        assert log.last_sequence("edge-1") == 3  # batch 3 was never acknowledged: it comes again
        assert log.append(batch(3), "edge-1", 4) == 3
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actors.ingest_log"), open_log(tmp_path) as log:
        assert values(log.read_from(0)) == [0, 1, 2, 3]
    assert caplog.text == ""


def test_a_record_whose_crc_does_not_match_is_cut_off_with_everything_after_it(tmp_path, caplog):
    sizes = append_all(tmp_path, 3)
    path = tmp_path / "logs" / segment_files(tmp_path)[-1]
    data = bytearray(path.read_bytes())
    data[sizes[1] - 2] ^= 0xFF  # a byte of the Arrow stream of batch 1
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="actors.ingest_log"), open_log(tmp_path) as log:
        assert values(log.read_from(0)) == [0]
        assert log.next_offset == 1 and log.last_sequence("edge-1") == 1
        assert "CRC does not match" in caplog.text
        assert f"at byte {sizes[0]}; {sizes[2] - sizes[0]} bytes dropped" in caplog.text
    assert path.stat().st_size == sizes[0]


def first_offsets(log):
    return [int(path.name.split("-")[-1].split(".")[0]) for path in log.segment_paths]


def test_damage_in_an_older_segment_is_an_error_when_it_is_read_and_nothing_is_cut(tmp_path):
    """An older segment was complete and synced: cutting it would lose acknowledged batches."""
    with open_log(tmp_path, segment_bytes=2_000) as log:
        for value in range(8):
            log.append(batch(value))
        oldest, firsts = log.segment_paths[0], first_offsets(log)
        data = bytearray(oldest.read_bytes())
        data[-2] ^= 0xFF  # in the last batch of the oldest segment
        oldest.write_bytes(bytes(data))
        with pytest.raises(CitystreamError, match=re.escape(f"{oldest}: the record at byte") + r" \d+ is damaged"):
            log.read(firsts[1] - 1)
        assert values([log.read(0)]) == [0]
    with open_log(tmp_path, segment_bytes=2_000) as log:
        assert log.next_offset == 8  # opening reads only the newest segment
        assert values(log.read_from(firsts[1])) == list(range(firsts[1], 8))
        # The first read of an older segment after a reopen checks all of it.
        with pytest.raises(CitystreamError, match=re.escape(f"ingest log segment {oldest}: a record whose CRC does not match")):
            log.read(0)
    assert oldest.read_bytes() == bytes(data)


def test_release_before_deletes_the_whole_segments_before_an_offset(tmp_path):
    with open_log(tmp_path, segment_bytes=2_000) as log:
        for value in range(12):
            log.append(batch(value), "edge-1", value + 1)
        paths, firsts = log.segment_paths, first_offsets(log)
        assert log.release_before(0) == 0
        # The segment holding the offset stays: batches from its first offset are readable.
        middle = firsts[2] + 1
        assert log.release_before(middle) == 2
        assert log.segment_paths == paths[2:]
        assert not paths[0].exists() and not paths[1].exists()
        assert log.first_offset == firsts[2]
        assert values(log.read_from(log.first_offset)) == list(range(firsts[2], 12))
        with pytest.raises(OffsetNotLogged, match=f"no batch with offset 0 .it holds offsets {firsts[2]}..11"):
            log.read(0)
        # The newest segment is never deleted, even when every batch is released.
        assert log.release_before(12) == len(paths) - 3
        assert log.segment_paths == paths[-1:]
        with pytest.raises(OptionError, match="'offset' = 13"):
            log.release_before(13)
        assert log.append(batch(12)) == 12
    with open_log(tmp_path, segment_bytes=2_000) as log:
        assert (log.first_offset, log.next_offset) == (firsts[-1], 13)


def test_the_devices_last_sequences_are_recovered_on_open_also_after_release(tmp_path):
    with open_log(tmp_path, segment_bytes=2_000) as log:
        for value in range(10):
            log.append(batch(value), f"edge-{value % 3}", value + 1)
        log.append(batch(99), "späti-ß", 42)
        log.release_before(log.next_offset)  # the batches of most devices are gone with their segments
        sequences = log.device_sequences()
    assert sequences == {"edge-0": 10, "edge-1": 8, "edge-2": 9, "späti-ß": 42}
    with open_log(tmp_path, segment_bytes=2_000) as log:
        assert log.device_sequences() == sequences
        assert log.append(batch(7), "edge-1", 8) is None
        assert log.append(batch(7), "edge-1", 11) == 11


def test_only_one_log_may_be_open_and_a_closed_one_can_be_reopened(tmp_path):
    log = open_log(tmp_path)
    log.append(batch(1))
    with pytest.raises(CitystreamError, match="already open in another IngestLog"):
        open_log(tmp_path)
    IngestLog(tmp_path / "logs", "readings").close()  # another kind is another log
    log.close()
    log.close()
    for call in (lambda: log.append(batch(2)), lambda: log.read(0), lambda: log.release_before(0)):
        with pytest.raises(CitystreamError, match="is closed"):
            call()
    with open_log(tmp_path) as log:
        assert values(log.read_from(0)) == [1]


def test_a_log_held_by_a_process_that_died_can_be_opened(tmp_path):
    script = (
        "import sys, pyarrow as pa\n"
        "from actors.ingest_log import IngestLog\n"
        f"log = IngestLog({str(tmp_path / 'logs')!r}, {NAME!r})\n"
        "log.append(pa.record_batch({'value': [7]}), 'edge-1', 1)\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "open\n"
        with pytest.raises(CitystreamError, match="already open"):
            open_log(tmp_path)
    finally:
        child.kill()
        child.wait(10)
    with open_log(tmp_path) as log:
        assert values(log.read_from(0)) == [7] and log.last_sequence("edge-1") == 1


def test_after_a_failed_fsync_the_log_refuses_writes_until_it_is_reopened(tmp_path, monkeypatch):
    log = open_log(tmp_path)
    log.append(batch(1))
    path = log.segment_paths[-1]
    size = path.stat().st_size

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("actors.log_records.os.fsync", failing_fsync)
    with pytest.raises(CitystreamError, match=r"the write failed .*Input/output error"):
        log.append(batch(2), "edge-1", 1)
    monkeypatch.undo()
    assert (log.next_offset, log.last_sequence("edge-1"), path.stat().st_size) == (1, 0, size)
    with pytest.raises(CitystreamError, match="refuses writes after a failed write"):
        log.append(batch(2))
    log.close()
    with open_log(tmp_path) as log:
        assert log.append(batch(2), "edge-1", 1) == 1


def test_a_segment_left_unfinished_is_removed_and_other_files_are_refused_with_their_name(tmp_path, caplog):
    append_all(tmp_path, 2)
    logs = tmp_path / "logs"
    (logs / f"ingest-{NAME}-{2:020d}.seg.tmp").write_bytes(b"CSING")
    (logs / f"ingest-{NAME}-x-{0:020d}.seg.tmp").write_bytes(b"another log's")
    with caplog.at_level(logging.INFO, logger="actors.ingest_log"), open_log(tmp_path) as log:
        assert log.next_offset == 2
    assert "unfinished segment start, removed" in caplog.text
    assert not (logs / f"ingest-{NAME}-{2:020d}.seg.tmp").exists()
    assert (logs / f"ingest-{NAME}-x-{0:020d}.seg.tmp").exists()
    stranger = logs / f"ingest-{NAME}-{5:020d}.seg"
    stranger.write_bytes(b"offset,batch\n")
    with pytest.raises(CitystreamError, match=re.escape(f"{stranger} is not an ingest log segment")):
        open_log(tmp_path)
    stranger.unlink()


def test_options_and_batches_that_cannot_be_logged_are_refused(tmp_path):
    for name in ("", "../detections", "a/b", ".hidden"):
        with pytest.raises(OptionError, match="'name'"):
            IngestLog(tmp_path, name)
    with pytest.raises(OptionError, match="'segment_bytes'"):
        IngestLog(tmp_path, NAME, segment_bytes=0)
    with open_log(tmp_path) as log:
        with pytest.raises(CitystreamError, match=r"takes a pyarrow\.RecordBatch, not Table"):
            log.append(pa.table({"value": [1]}))
        with pytest.raises(OptionError, match="'batch_sequence'"):
            log.append(batch(1), "edge-1", -1)
        with pytest.raises(CitystreamError, match="has 70000 bytes"):
            log.append(batch(1), "d" * 70_000, 1)
        assert log.next_offset == 0


def test_concurrent_appends_and_reads_see_no_gap(tmp_path):
    problems: list[str] = []
    done = threading.Event()
    with open_log(tmp_path, segment_bytes=4_000) as log:

        def write(thread):
            for value in range(30):
                log.append(batch(thread * 100 + value), f"edge-{thread}", value + 1)

        def read():
            while not done.is_set():
                end = log.next_offset
                seen = [record.offset for record in log.read_from(0, limit=end)]
                if seen != list(range(end)):
                    problems.append(f"gap in {seen}")

        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=write, args=(t,)) for t in range(3)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        done.set()
        reader.join()
        assert problems == []
        assert sorted(values(log.read_from(0))) == sorted(t * 100 + v for t in range(3) for v in range(30))
        assert log.device_sequences() == {"edge-0": 30, "edge-1": 30, "edge-2": 30}
