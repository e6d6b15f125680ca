"""Detections pushed by edge devices over gRPC (Arrow IPC in protobuf) enter the graph, through
the durable ingest log: acknowledged only once logged, replayed from a checkpoint's offset."""

import dataclasses
import threading
import time

import grpc
import pyarrow as pa
import pytest

from actors.city import city_flow
from actors.ingest import IngestFeed, encode_batch
from actors.ingest_log import IngestLog
from actors.schemas import DETECTION, TIME
from actors.topology import load_city
from engine import ChannelOptions, RayExecutor
from engine.errors import CitystreamError, OptionError
from engine.state import StateError, decode_state, encode_state
from protos.citystream.v1 import dispatch_pb2, dispatch_pb2_grpc, ingest_pb2, ingest_pb2_grpc


def detections(ts_ms, rows=2, camera="songdo-central-park", label="person", track_id=1):
    return pa.table(
        {
            "ts": pa.array([ts_ms + i for i in range(rows)], pa.int64()).cast(TIME),
            "camera": [camera] * rows,
            "district": [camera.split("-")[0]] * rows,
            "track_id": [track_id] * rows,
            "label": [label] * rows,
            "confidence": [0.9] * rows,
            "frame_x": [0.5] * rows,
            "frame_y": [0.5] * rows,
            "lat": [37.39] * rows,
            "lon": [126.64] * rows,
            "zone": ["plaza"] * rows,
            "zone_kind": ["plaza"] * rows,
            "ingest_time": pa.array([ts_ms] * rows, pa.int64()).cast(TIME),
        },
        schema=DETECTION,
    )


def test_pushed_batches_reach_the_source_and_bad_ones_are_refused_with_a_reason(tmp_path):
    feed = IngestFeed("detections", port=0, queue_batches=8, log_dir=tmp_path)
    feed.open(0, 1)
    try:
        good = encode_batch(detections(1_000))
        messages = [
            ingest_pb2.IngestBatch(detections=good, device="cam-group-1", batch_sequence=1),
            ingest_pb2.IngestBatch(detections=good, device="cam-group-1", batch_sequence=1),  # sent twice
            ingest_pb2.IngestBatch(readings=good, device="cam-group-1", batch_sequence=2),
            ingest_pb2.IngestBatch(detections=b"not arrow", device="cam-group-1", batch_sequence=3),
            ingest_pb2.IngestBatch(detections=encode_batch(detections(2_000).drop_columns(["camera"])), batch_sequence=4),
            ingest_pb2.IngestBatch(detections=encode_batch(detections(3_000, rows=3)), device="cam-group-1", batch_sequence=5),
        ]
        with grpc.insecure_channel(feed.address) as channel:
            summary = ingest_pb2_grpc.IngestServiceStub(channel).Push(iter(messages), timeout=10)
        assert (summary.batches, summary.detections, summary.refused_batches) == (6, 5, 3)
        assert "takes detections, not readings" in summary.errors[0]
        assert "not an Arrow IPC stream" in summary.errors[1]
        assert "columns ['camera'] are missing" in summary.errors[2]
        polled = [feed.poll(), feed.poll(), feed.poll()]
        assert [b.num_rows for b in polled[:2]] == [2, 3] and polled[2] is None
        assert polled[0].schema == DETECTION
    finally:
        feed.close()


def push(feed, messages, timeout=10):
    with grpc.insecure_channel(feed.address) as channel:
        return ingest_pb2_grpc.IngestServiceStub(channel).Push(iter(messages), timeout=timeout)


def pushed(first, last, device="edge-1"):
    """Batches first..last of a device: batch n has n rows (at ts n * 1000), sequence n."""
    return [
        ingest_pb2.IngestBatch(detections=encode_batch(detections(n * 1_000, rows=n)), device=device, batch_sequence=n)
        for n in range(first, last + 1)
    ]


def poll_all(feed):
    """The sizes of the batches ready now (batch n has n rows)."""
    sizes = []
    while (batch := feed.poll()) is not None:
        sizes.append(batch.num_rows)
    return sizes


def test_polls_replay_from_a_snapshot_after_a_reopen_and_resent_batches_stay_deduplicated(tmp_path):
    feed = IngestFeed("detections", queue_batches=16, address_dir=str(tmp_path), segment_bytes=4_000)
    feed.open(0, 1)
    try:
        assert feed.replayable and feed.snapshot() == 0
        summary = push(feed, pushed(1, 6))
        assert (summary.batches, summary.detections) == (6, 21)
        assert [feed.poll().num_rows, feed.poll().num_rows] == [1, 2]
        # The snapshot goes into a checkpoint through the state codec.
        encoded = encode_state(feed.snapshot())
        state = decode_state(encoded.small, encoded.tables)
        assert state == 2
        assert poll_all(feed) == [3, 4, 5, 6]
    finally:
        feed.close()
    # Everything acknowledged is in the log, in order, with its device and sequence.
    with IngestLog(tmp_path, "detections") as log:
        assert [(r.offset, r.device, r.batch_sequence, r.batch.num_rows) for r in log.read_from(0)] == [
            (n - 1, "edge-1", n, n) for n in range(1, 7)
        ]
    restarted = IngestFeed("detections", queue_batches=16, address_dir=str(tmp_path), segment_bytes=4_000)
    restarted.open(0, 1)
    try:
        assert restarted.snapshot() == 6  # without a checkpoint: what is pushed from now on
        restarted.restore(state)
        replayed = [restarted.poll() for _ in range(4)]
        assert [b.num_rows for b in replayed] == [3, 4, 5, 6]
        assert replayed[0].schema == DETECTION and replayed[0].column("ts")[0].as_py().timestamp() == 3.0
        # The device did not see its summary and sends 5 and 6 again, then 7.
        summary = push(restarted, pushed(5, 7))
        assert (summary.batches, summary.detections, summary.refused_batches) == (3, 7, 0)
        assert poll_all(restarted) == [7]
        # A checkpoint at offset 7 commits: the segments before it go, the one holding it stays.
        segments = sorted(tmp_path.glob("ingest-detections-*.seg"))
        assert len(segments) > 2
        restarted.on_commit(1, restarted.snapshot())
        kept = sorted(tmp_path.glob("ingest-detections-*.seg"))
        assert kept == segments[-1:]
        with pytest.raises(StateError, match=r"cannot restore offset 2: its log .* replays from offsets 6\.\.7"):
            restarted.restore(2)
    finally:
        restarted.close()


def test_a_device_waits_while_the_graph_is_far_behind(tmp_path):
    feed = IngestFeed("detections", queue_batches=2, log_dir=tmp_path)
    feed.open(0, 1)
    try:
        summaries = []
        device = threading.Thread(target=lambda: summaries.append(push(feed, pushed(1, 5), timeout=30)))
        device.start()
        deadline = time.monotonic() + 20
        while feed._available < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        # Two batches logged ahead of the graph: the third one waits for a poll.
        assert summaries == [] and feed._available == 2
        sizes = []
        deadline = time.monotonic() + 20
        while len(sizes) < 5 and time.monotonic() < deadline:
            sizes += poll_all(feed)
            time.sleep(0.01)
        device.join(timeout=20)
        assert sizes == [1, 2, 3, 4, 5]
        assert summaries[0].detections == 15
    finally:
        feed.close()


def test_a_feed_needs_a_directory_for_its_log_and_a_second_one_on_it_is_refused(tmp_path):
    with pytest.raises(OptionError, match="'log_dir'"):
        IngestFeed("detections")
    feed = IngestFeed("detections", log_dir=tmp_path)
    feed.open(0, 1)
    try:
        with pytest.raises(CitystreamError, match="already open in another IngestLog"):
            IngestFeed("detections", log_dir=tmp_path).open(0, 1)
        readings = IngestFeed("readings", log_dir=tmp_path)  # another kind, another log
        readings.open(0, 1)
        readings.close()
    finally:
        feed.close()


def test_detections_pushed_into_the_live_city_raise_an_incident_at_a_console(ray_instance, tmp_path):
    city = load_city()
    city = dataclasses.replace(
        city,
        gateways=tuple(dataclasses.replace(g, port=0) for g in city.gateways),
        dispatch=dataclasses.replace(city.dispatch, log_dir=str(tmp_path), ingest_port=0),
    )
    job = RayExecutor(channels=ChannelOptions(linger_ms=2)).submit(city_flow(city, mode="live", screen=False))
    try:

        def address(name):
            path = tmp_path / f"{name}.address"
            deadline = time.monotonic() + 120
            while not path.exists():
                assert time.monotonic() < deadline
                time.sleep(0.2)
            return path.read_text()

        received = []

        def console():
            with grpc.insecure_channel(address("incheon-yeonsu-police")) as channel:
                stub = dispatch_pb2_grpc.IncidentServiceStub(channel)
                try:
                    for incident in stub.Subscribe(
                        dispatch_pb2.SubscribeRequest(kinds=["fire"]), metadata=(("authorization", "Bearer ioc-demo-token"),)
                    ):
                        received.append(incident)
                        if "pushed-fire" in incident.evidence or "cheongna-city-tower" in incident.cameras:
                            return
                except grpc.RpcError:
                    pass

        listener = threading.Thread(target=console, daemon=True)
        listener.start()
        now = int(time.time() * 1000)
        fire = detections(now, rows=4, camera="cheongna-city-tower", label="fire", track_id=424242)
        with grpc.insecure_channel(address("ingest-detections")) as channel:
            summary = ingest_pb2_grpc.IngestServiceStub(channel).Push(
                iter([ingest_pb2.IngestBatch(detections=encode_batch(fire), device="edge-7", batch_sequence=1)]), timeout=30
            )
        assert summary.detections == 4 and summary.refused_batches == 0
        listener.join(timeout=90)
        mine = [i for i in received if "cheongna-city-tower" in i.cameras and i.district == "cheongna"]
        assert mine, [i.incident_id for i in received]
        assert mine[0].kind == "fire" and mine[0].severity >= 4
    finally:
        job.stop(timeout=120)
