"""Detections and weather readings pushed in from outside (edge devices) over gRPC.

``IngestFeed`` is a source: its task serves ``citystream.v1.IngestService`` and hands the pushed
Arrow batches to the graph. Each message carries one Arrow IPC stream (a whole batch): no
per-row protobuf, and the bytes are read by pyarrow without conversion. A bounded queue between
the server and the graph makes a device wait (HTTP/2 flow control) when the graph is behind.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import grpc
import pyarrow as pa

from actors.schemas import DETECTION, WEATHER
from engine.errors import CitystreamError
from engine.sources import Source
from protos.citystream.v1 import ingest_pb2, ingest_pb2_grpc

logger = logging.getLogger(__name__)

Kind = Literal["detections", "readings"]


def encode_batch(batch: pa.RecordBatch | pa.Table) -> bytes:
    """A batch as Arrow IPC stream bytes, for an IngestBatch payload."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write(batch)
    return sink.getvalue().to_pybytes()


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, kind: Kind, schema: pa.Schema, batches: queue.Queue[pa.RecordBatch]) -> None:
        self.kind = kind
        self.schema = schema
        self.batches = batches
        self.last_sequence: dict[str, int] = {}

    async def Push(
        self, request_iterator: AsyncIterator[ingest_pb2.IngestBatch], context: grpc.aio.ServicerContext
    ) -> ingest_pb2.IngestSummary:
        summary = ingest_pb2.IngestSummary()
        async for message in request_iterator:
            summary.batches += 1
            try:
                table = self._decode(message)
            except CitystreamError as exc:
                summary.refused_batches += 1
                summary.errors.append(f"batch {message.batch_sequence} of '{message.device}': {exc}")
                continue
            if message.device and message.batch_sequence:
                if message.batch_sequence <= self.last_sequence.get(message.device, 0):
                    continue  # sent again after a reconnect: acknowledged, not ingested twice
                self.last_sequence[message.device] = message.batch_sequence
            for batch in table.to_batches():
                await asyncio.to_thread(self.batches.put, batch)  # waits while the graph is behind
            if self.kind == "detections":
                summary.detections += table.num_rows
            else:
                summary.readings += table.num_rows
        return summary

    def _decode(self, message: ingest_pb2.IngestBatch) -> pa.Table:
        which = message.WhichOneof("payload")
        if which != self.kind:
            raise CitystreamError(f"this endpoint takes {self.kind}, not {which or 'an empty message'}")
        try:
            table = pa.ipc.open_stream(getattr(message, which)).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise CitystreamError(f"not an Arrow IPC stream: {exc}") from None
        missing = [name for name in self.schema.names if name not in table.column_names]
        if missing:
            raise CitystreamError(f"columns {missing} are missing; the schema is {self.schema.names}")
        try:
            return table.select(self.schema.names).cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CitystreamError(f"columns do not fit the {self.kind} schema: {exc}") from None


class IngestFeed(Source):
    """A source of pushed detections (or readings); its task serves the ingest service.

    Args:
        kind: "detections" (schema DETECTION) or "readings" (schema WEATHER).
        host, port: where to serve (port 0: any free port); the address is written to
            ``address_dir/ingest-<kind>.address`` when given.
        queue_batches: batches accepted ahead of the graph before devices wait.
    """

    def __init__(self, kind: Kind, host: str = "127.0.0.1", port: int = 0, address_dir: str | None = None,
                 queue_batches: int = 64) -> None:
        if kind not in ("detections", "readings"):
            raise CitystreamError(f"ingest kind must be 'detections' or 'readings', not {kind!r}")
        self.kind: Kind = kind
        self.schema = DETECTION if kind == "detections" else WEATHER
        self.host, self.port = host, port
        self.address_dir = address_dir
        self.queue_batches = queue_batches
        self.address = ""
        self._batches: queue.Queue[pa.RecordBatch] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None

    def open(self, partition: int, partitions: int) -> None:
        self._batches = queue.Queue(self.queue_batches)
        ready = threading.Event()
        errors: list[BaseException] = []
        threading.Thread(target=self._serve, args=(ready, errors), name=f"ingest {self.kind}", daemon=True).start()
        ready.wait(30)
        if errors or not self.address:
            raise CitystreamError(f"the {self.kind} ingest service could not start on {self.host}:{self.port}: {errors}")
        if self.address_dir:
            Path(self.address_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.address_dir) / f"ingest-{self.kind}.address").write_text(self.address)
        logger.info("ingest of %s on %s (plaintext)", self.kind, self.address)

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop

        async def start() -> None:
            assert self._batches is not None
            server = grpc.aio.server()
            ingest_pb2_grpc.add_IngestServiceServicer_to_server(IngestServicer(self.kind, self.schema, self._batches), server)
            port = server.add_insecure_port(f"{self.host}:{self.port}")
            await server.start()
            self._server, self.address = server, f"{self.host}:{port}"

        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    def poll(self) -> pa.RecordBatch | None:
        assert self._batches is not None, "open() the source first"
        try:
            return self._batches.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        loop, server = self._loop, self._server
        if loop is None:
            return
        if server is not None:
            asyncio.run_coroutine_threadsafe(server.stop(1.0), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._loop = None

    def __getstate__(self) -> dict[str, object]:
        # Copied per task and pickled to Ray actors before open(): no threads or queues yet.
        state = dict(self.__dict__)
        state.update(_batches=None, _loop=None, _server=None, address="")
        return state
