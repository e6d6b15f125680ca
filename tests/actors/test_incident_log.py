"""The police gateway's incident log: sequences without gaps, deduplication, acknowledgements,
recovery after a crash or a damaged record, and concurrent appends."""

import logging
import re
import threading

import pytest

from actors.incident_log import IncidentLog, IncidentNotFound
from engine.errors import CitystreamError, OptionError
from protos.citystream.v1 import dispatch_pb2

GATEWAY = "incheon-jung-police"


def incident(incident_id, district="songdo", kind="fire", severity=3, **fields):
    return dispatch_pb2.Incident(incident_id=incident_id, district=district, kind=kind, severity=severity, **fields)


def incidents(*ids):
    return [incident(i) for i in ids]


def sequences(found):
    return [i.sequence for i in found]


def ids(found):
    return [i.incident_id for i in found]


@pytest.fixture
def path(tmp_path):
    return tmp_path / "logs" / f"{GATEWAY}.log"


def open_log(tmp_path, **options):
    return IncidentLog(tmp_path / "logs", GATEWAY, **options)


def test_sequences_start_at_1_without_gaps_over_several_appends(tmp_path, path):
    with open_log(tmp_path) as log:
        assert (log.last_sequence, len(log)) == (0, 0)
        given = incidents("a", "b", "c")
        first = log.append(given)
        assert log.append([]) == []
        second = log.append(incidents("d"))
        third = log.append(incidents("e", "f", "g", "h", "i"))
        assert sequences(first + second + third) == list(range(1, 10))
        assert (log.last_sequence, len(log)) == (9, 9)
        stored = log.get(4)
        assert stored == incident("d", severity=3, sequence=4, gateway=GATEWAY, logged_time=stored.logged_time)
        assert stored.logged_time.seconds > 0
        assert stored == second[0]
        # The caller's messages are not changed, and changing a returned copy does not change the log.
        assert given[0].sequence == 0 and given[0].gateway == ""
        first[0].district = "elsewhere"
        assert log.get(1).district == "songdo"
    assert path.is_file()


def test_an_incident_id_is_logged_once_within_a_call_across_calls_and_across_a_reopen(tmp_path):
    with open_log(tmp_path) as log:
        assert ids(log.append(incidents("a", "b", "a"))) == ["a", "b"]
        new = log.append(incidents("b", "c", "a"))
        assert (ids(new), sequences(new)) == (["c"], [3])
        assert log.append(incidents("c")) == []
        before = log.read_after(0)
    with open_log(tmp_path) as log:
        assert log.read_after(0) == before
        new = log.append(incidents("a", "d", "b"))
        assert (ids(new), sequences(new)) == (["d"], [4])
        assert log.get_by_id("a").sequence == 1


def test_read_after_returns_the_incidents_above_a_sequence_in_order_at_most_limit(tmp_path):
    with open_log(tmp_path) as log:
        log.append(incidents(*"abcdef"))
        assert sequences(log.read_after(0)) == [1, 2, 3, 4, 5, 6]
        assert sequences(log.read_after(2)) == [3, 4, 5, 6]
        assert sequences(log.read_after(2, limit=3)) == [3, 4, 5]
        assert sequences(log.read_after(4, limit=10)) == [5, 6]
        assert log.read_after(2, limit=0) == []
        assert log.read_after(6) == log.read_after(100) == []
        with pytest.raises(OptionError, match="'limit' = -1"):
            log.read_after(0, limit=-1)
        with pytest.raises(OptionError, match="'sequence' = -1"):
            log.read_after(-1)


def test_get_and_get_by_id_find_an_incident_or_raise_an_error_naming_what_is_missing(tmp_path):
    with open_log(tmp_path) as log:
        log.append(incidents("fire/songdo/1", "crowd/cheongna/2"))
        assert log.get(2).incident_id == "crowd/cheongna/2"
        assert log.get_by_id("fire/songdo/1").sequence == 1
        for missing in (0, 3, 99):
            with pytest.raises(IncidentNotFound, match=f"no incident with sequence {missing} .*holds sequences 1..2"):
                log.get(missing)
        with pytest.raises(KeyError, match="no incident with incident_id 'road/yeongjong/9'"):
            log.get_by_id("road/yeongjong/9")
        with pytest.raises(CitystreamError, match="sequence 7"):
            log.acknowledge(7, "console-1")
    error = IncidentNotFound(GATEWAY, sequence=5)
    assert isinstance(error, KeyError) and isinstance(error, CitystreamError)
    assert str(error) == f"gateway '{GATEWAY}': no incident with sequence 5 in the incident log (it holds no incident yet)"


def test_an_acknowledgement_is_durable_and_the_first_one_is_kept(tmp_path, path):
    with open_log(tmp_path) as log:
        log.append(incidents("a", "b"))
        taken = log.acknowledge(2, "console-3", officer="Kim", note="on the way")
        assert (taken.sequence, taken.incident_id) == (2, "b")
        acknowledgement = taken.acknowledgement
        assert (acknowledgement.console, acknowledgement.officer, acknowledgement.note) == ("console-3", "Kim", "on the way")
        assert acknowledgement.time.seconds > 0
        assert log.get(2) == taken and not log.get(1).HasField("acknowledgement")
        size = path.stat().st_size
        assert log.acknowledge(2, "console-5", officer="Lee") == taken
        assert path.stat().st_size == size  # nothing written the second time
        with pytest.raises(CitystreamError, match="needs the console"):
            log.acknowledge(1, "")
    with open_log(tmp_path) as log:
        assert log.get(2) == taken and log.get_by_id("b") == taken
        assert log.acknowledge(2, "console-5") == taken
        assert not log.get(1).HasField("acknowledgement")
        assert log.append(incidents("c"))[0].sequence == 3


def test_an_acknowledgement_given_with_an_incident_is_not_logged(tmp_path):
    given = incident("a")
    given.acknowledgement.console = "forged"
    with open_log(tmp_path) as log:
        assert not log.append([given])[0].HasField("acknowledgement")
        assert log.acknowledge(1, "console-1").acknowledgement.console == "console-1"


def sizes_after_appends(tmp_path, path, batches):
    """Appends each batch in its own call; the file's size after each."""
    with open_log(tmp_path) as log:
        sizes = [path.stat().st_size]
        for batch in batches:
            log.append(incidents(*batch))
            sizes.append(path.stat().st_size)
    return sizes


@pytest.mark.parametrize("cut", [3, "all but 5 bytes of the record"])
def test_a_record_cut_short_by_a_crash_is_dropped_with_a_warning_and_appending_continues(tmp_path, path, caplog, cut):
    sizes = sizes_after_appends(tmp_path, path, [["a", "b"], ["c"], ["d"]])
    # The process died while writing the last record: only part of it reached the disk.
    keep = sizes[3] - cut if isinstance(cut, int) else sizes[2] + 5
    with open(path, "r+b") as file:
        file.truncate(keep)
    with caplog.at_level(logging.WARNING, logger="actors.incident_log"), open_log(tmp_path) as log:
        assert ids(log.read_after(0)) == ["a", "b", "c"]
        assert path.stat().st_size == sizes[2]
        assert f"{keep - sizes[2]} bytes dropped" in caplog.text and str(path) in caplog.text
        # The graph replays what was never acknowledged to it: "d" gets the next sequence.
        new = log.append(incidents("c", "d", "e"))
        assert (ids(new), sequences(new)) == (["d", "e"], [4, 5])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actors.incident_log"), open_log(tmp_path) as log:
        assert sequences(log.read_after(0)) == [1, 2, 3, 4, 5]
    assert caplog.text == ""


def test_a_record_whose_crc_does_not_match_is_cut_off_with_everything_after_it(tmp_path, path, caplog):
    """A damaged record in the middle cannot be skipped safely (its length may be what is damaged),
    so the log ends before it: the records after it are lost, and the warning says how many bytes."""
    sizes = sizes_after_appends(tmp_path, path, [["a"], ["b"], ["c"]])
    data = bytearray(path.read_bytes())
    data[sizes[2] - 2] ^= 0xFF  # a byte of the payload of "b"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="actors.incident_log"), open_log(tmp_path) as log:
        assert ids(log.read_after(0)) == ["a"]
        assert path.stat().st_size == sizes[1]
        assert "CRC does not match" in caplog.text
        assert f"at byte {sizes[1]}; {sizes[3] - sizes[1]} bytes dropped" in caplog.text
        assert sequences(log.append(incidents("b", "c"))) == [2, 3]


def test_a_file_that_is_not_an_incident_log_is_refused_with_its_name(tmp_path, path):
    path.parent.mkdir()
    path.write_bytes(b"sequence,incident_id\n1,a\n")
    with pytest.raises(CitystreamError, match=re.escape(f"{path} is not an incident log")):
        open_log(tmp_path)
    assert path.read_bytes() == b"sequence,incident_id\n1,a\n"  # left as it was


def test_a_newer_format_version_is_refused(tmp_path, path):
    sizes_after_appends(tmp_path, path, [["a"]])
    data = bytearray(path.read_bytes())
    data[8] = 9
    path.write_bytes(bytes(data))
    with pytest.raises(CitystreamError, match="format version 9; this code reads version 1"):
        open_log(tmp_path)


def test_an_empty_or_half_written_file_header_is_written_again(tmp_path, path):
    sizes_after_appends(tmp_path, path, [])
    header = path.read_bytes()
    path.write_bytes(header[:5])
    with open_log(tmp_path) as log:
        assert log.append(incidents("a"))[0].sequence == 1
    assert path.read_bytes().startswith(header)


def test_only_one_log_may_have_the_file_open(tmp_path):
    with open_log(tmp_path):
        with pytest.raises(CitystreamError, match="already open"):
            open_log(tmp_path)
    with open_log(tmp_path) as log:
        log.append(incidents("a"))


def test_a_closed_log_refuses_writes_and_still_answers_reads(tmp_path):
    log = open_log(tmp_path)
    log.append(incidents("a"))
    log.close()
    log.close()
    with pytest.raises(CitystreamError, match="is closed"):
        log.append(incidents("b"))
    with pytest.raises(CitystreamError, match="is closed"):
        log.acknowledge(1, "console-1")
    assert log.get(1).incident_id == "a"


def test_after_a_failed_fsync_the_log_refuses_writes_until_it_is_reopened(tmp_path, path, monkeypatch):
    log = open_log(tmp_path)
    log.append(incidents("a"))
    size = path.stat().st_size

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("actors.incident_log.os.fsync", failing_fsync)
    with pytest.raises(CitystreamError, match=r"the write failed .*Input/output error"):
        log.append(incidents("b"))
    monkeypatch.undo()
    assert (len(log), path.stat().st_size) == (1, size)  # nothing of the failed call is kept
    with pytest.raises(CitystreamError, match="refuses writes after a failed write"):
        log.append(incidents("b"))
    log.close()
    with open_log(tmp_path) as log:
        assert sequences(log.append(incidents("b"))) == [2]


def test_an_incident_without_id_or_a_gateway_that_cannot_name_a_file_is_refused(tmp_path):
    with open_log(tmp_path) as log:
        with pytest.raises(CitystreamError, match="incident 1 of the batch has no incident_id"):
            log.append([incident("a"), incident("")])
        assert len(log) == 0
    for gateway in ("", "../police", "a/b", ".hidden"):
        with pytest.raises(OptionError, match="'gateway'"):
            IncidentLog(tmp_path, gateway)


def test_concurrent_appends_from_4_threads_leave_no_gap_and_no_duplicate(tmp_path):
    # Threads share half of their ids, so deduplication races too; a reader checks meanwhile
    # that it never sees a gap.
    batches = {t: [[f"shared-{b}-{i}" if i % 2 else f"t{t}-{b}-{i}" for i in range(4)] for b in range(25)] for t in range(4)}
    returned: list[dispatch_pb2.Incident] = []
    problems: list[str] = []
    done = threading.Event()
    with open_log(tmp_path) as log:

        def write(thread):
            for batch in batches[thread]:
                returned.extend(log.append(incidents(*batch)))

        def read():
            while not done.is_set():
                seen = sequences(log.read_after(0))
                if seen != list(range(1, len(seen) + 1)):
                    problems.append(f"gap in {seen}")

        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        done.set()
        reader.join()
        expected = {i for thread in batches.values() for batch in thread for i in batch}
        logged = log.read_after(0)
        assert sequences(logged) == list(range(1, len(expected) + 1))
        assert sorted(ids(logged)) == sorted(expected)
        assert sorted(sequences(returned)) == sequences(logged)
        assert problems == []
    with open_log(tmp_path) as log:
        assert log.read_after(0) == logged
