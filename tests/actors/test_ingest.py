"""Detections pushed by edge devices over gRPC (Arrow IPC in protobuf) enter the graph."""

import dataclasses
import threading
import time

import grpc
import pyarrow as pa

from actors.city import city_flow
from actors.ingest import IngestFeed, encode_batch
from actors.schemas import DETECTION, TIME
from actors.topology import load_city
from engine import ChannelOptions, RayExecutor
from protos.citystream.v1 import dispatch_pb2, dispatch_pb2_grpc, ingest_pb2, ingest_pb2_grpc


def detections(ts_ms, rows=2, camera="songdo-central-park", label="person", track_id=1):
    return pa.table(
        {
            "ts": pa.array([ts_ms + i for i in range(rows)], pa.int64()).cast(TIME),
            "camera": [camera] * rows, "district": [camera.split("-")[0]] * rows, "track_id": [track_id] * rows,
            "label": [label] * rows, "confidence": [0.9] * rows, "frame_x": [0.5] * rows, "frame_y": [0.5] * rows,
            "lat": [37.39] * rows, "lon": [126.64] * rows, "zone": ["plaza"] * rows, "zone_kind": ["plaza"] * rows,
            "ingest_time": pa.array([ts_ms] * rows, pa.int64()).cast(TIME),
        },
        schema=DETECTION,
    )


def test_pushed_batches_reach_the_source_and_bad_ones_are_refused_with_a_reason():
    feed = IngestFeed("detections", port=0, queue_batches=8)
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


def test_detections_pushed_into_the_live_city_raise_an_incident_at_a_console(ray_instance, tmp_path):
    city = load_city()
    city = dataclasses.replace(
        city,
        gateways=tuple(dataclasses.replace(g, port=0) for g in city.gateways),
        dispatch=dataclasses.replace(city.dispatch, log_dir=str(tmp_path), ingest_port=0),
    )
    job = RayExecutor(channels=ChannelOptions(linger_ms=2)).submit(city_flow(city, mode="live"))
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
                    for incident in stub.Subscribe(dispatch_pb2.SubscribeRequest(kinds=["fire"]),
                                                   metadata=(("authorization", "Bearer ioc-demo-token"),)):
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
