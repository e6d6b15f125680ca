"""Detections and weather readings pushed in from outside (edge devices) over gRPC.

``IngestFeed`` is a source: its task serves ``citystream.v1.IngestService`` and hands the pushed
Arrow batches to the graph. Each message carries one Arrow IPC stream (a whole batch): no
per-row protobuf, and the bytes are read by pyarrow without conversion. Every batch goes to the
durable ingest log (``actors.ingest_log``) before it is counted in the summary that acknowledges
it, and the graph reads from the log, so a checkpoint's offset replays after a restart. A device
waits (HTTP/2 flow control) while too many logged batches are ahead of the graph.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import grpc
import pyarrow as pa

from actors.ingest_log import DEFAULT_SEGMENT_BYTES, IngestLog
from actors.schemas import DETECTION, WEATHER
from engine.errors import CitystreamError, OptionError
from engine.sources import Source
from engine.state import StateError
from protos.citystream.v1 import ingest_pb2, ingest_pb2_grpc

logger = logging.getLogger(__name__)

Kind = Literal["detections", "readings"]


def encode_batch(batch: pa.RecordBatch | pa.Table) -> bytes:
    """A batch as Arrow IPC stream bytes, for an IngestBatch payload."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write(batch)
    return sink.getvalue().to_pybytes()


# Takes a decoded batch with its device and batch_sequence, logs it durably (blocking: it runs on
# the log's thread, never on the event loop) and says whether it was new (False: re-sent).
Accept = Callable[[pa.RecordBatch, str, int], bool]


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Decodes and checks pushed batches, and has each one logged before it counts it.

    The summary returned at the end of a stream is the devices' acknowledgement: everything
    counted in it is on disk. Should logging fail, the stream fails (``UNAVAILABLE``) and the
    device sends again; the batches logged before are skipped then, by their sequence.
    """

    def __init__(
        self, kind: Kind, schema: pa.Schema, accept: Accept, is_logged: Callable[[str, int], bool], executor: ThreadPoolExecutor
    ) -> None:
        self.kind = kind
        self.schema = schema
        self.accept = accept
        self.is_logged = is_logged
        self.executor = executor

    async def Push(
        self, request_iterator: AsyncIterator[ingest_pb2.IngestBatch], context: grpc.aio.ServicerContext
    ) -> ingest_pb2.IngestSummary:
        summary = ingest_pb2.IngestSummary()
        loop = asyncio.get_running_loop()
        async for message in request_iterator:
            summary.batches += 1
            try:
                table = self._decode(message)
            except CitystreamError as exc:
                summary.refused_batches += 1
                summary.errors.append(f"batch {message.batch_sequence} of '{message.device}': {exc}")
                continue
            if table.num_rows == 0 or self.is_logged(message.device, message.batch_sequence):
                continue  # nothing to log, or sent again after a reconnect: acknowledged, not ingested twice
            batch = table.combine_chunks().to_batches()[0]
            try:
                # Waits while the graph is far behind; returns once the batch is on disk.
                logged = await loop.run_in_executor(self.executor, self.accept, batch, message.device, message.batch_sequence)
            except CitystreamError as exc:
                logger.warning(
                    "ingest of %s: batch %d of %r not logged: %s", self.kind, message.batch_sequence, message.device, exc
                )
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"batch {message.batch_sequence} of '{message.device}': {exc}")
            if not logged:
                continue
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

    Every accepted batch is in the ingest log (``<log_dir>/ingest-<kind>-*.seg``) before the
    device is told so, and ``poll`` reads from the log, in order: the newest batches from
    memory, older ones (after ``restore``) from disk. ``snapshot`` is the offset of the next
    batch to poll; ``restore`` goes back to it; ``on_commit`` deletes the segments before it.
    A job that starts without a checkpoint polls what is pushed from then on.

    Args:
        kind: "detections" (schema DETECTION) or "readings" (schema WEATHER).
        host, port: where to serve (port 0: any free port); the address is written to
            ``address_dir/ingest-<kind>.address`` when given.
        address_dir: where the address file goes; also the log's directory unless ``log_dir``.
        queue_batches: batches logged ahead of the graph (not polled yet) before devices wait.
        log_dir: the ingest log's directory (default: ``address_dir``; one of them is needed).
        segment_bytes: the size at which the log starts a new segment file.
    """

    replayable = True

    def __init__(
        self,
        kind: Kind,
        host: str = "127.0.0.1",
        port: int = 0,
        address_dir: str | None = None,
        queue_batches: int = 64,
        log_dir: str | Path | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        if kind not in ("detections", "readings"):
            raise CitystreamError(f"ingest kind must be 'detections' or 'readings', not {kind!r}")
        directory = log_dir if log_dir is not None else address_dir
        if directory is None:
            raise OptionError("log_dir", None, "the directory of the ingest log (or address_dir, which it defaults to)")
        if isinstance(queue_batches, bool) or not isinstance(queue_batches, int) or queue_batches < 1:
            raise OptionError("queue_batches", queue_batches, "an integer >= 1")
        self.kind: Kind = kind
        self.schema = DETECTION if kind == "detections" else WEATHER
        self.host, self.port = host, port
        self.address_dir = address_dir
        self.log_dir = Path(directory)
        self.queue_batches = queue_batches
        self.segment_bytes = segment_bytes
        self.address = ""
        self._log: IngestLog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        # Between the log's thread (accept) and the task's (poll): the offset of the next batch
        # to poll, how far polls may go (batches logged and in _recent), and the batches logged
        # but not polled yet, so that the hot path does not read the file back.
        self._progress = threading.Condition()
        self._next = 0
        self._available = 0
        self._recent: dict[int, pa.RecordBatch] = {}
        self._closing = False

    def open(self, partition: int, partitions: int) -> None:
        # Opened first: a log another process holds stops the source before it serves anything.
        self._log = IngestLog(self.log_dir, self.kind, segment_bytes=self.segment_bytes)
        self._next = self._available = self._log.next_offset
        self._recent, self._closing = {}, False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ingest-{self.kind}-log")
        ready = threading.Event()
        errors: list[BaseException] = []
        threading.Thread(target=self._serve, args=(ready, errors), name=f"ingest {self.kind}", daemon=True).start()
        ready.wait(30)
        if errors or not self.address:
            self.close()
            raise CitystreamError(f"the {self.kind} ingest service could not start on {self.host}:{self.port}: {errors}")
        if self.address_dir:
            Path(self.address_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.address_dir) / f"ingest-{self.kind}.address").write_text(self.address)
        logger.info("ingest of %s on %s (plaintext), logged in %s from offset %d", self.kind, self.address, self._log, self._next)

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop

        async def start() -> None:
            assert self._log is not None and self._executor is not None
            server = grpc.aio.server()
            servicer = IngestServicer(self.kind, self.schema, self._accept, self._is_logged, self._executor)
            ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
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

    def _is_logged(self, device: str, batch_sequence: int) -> bool:
        """A re-sent batch, known without waiting for room (the log checks again when appending)."""
        log = self._log
        return log is not None and bool(device) and 0 < batch_sequence <= log.last_sequence(device)

    def _accept(self, batch: pa.RecordBatch, device: str, batch_sequence: int) -> bool:
        """Waits for room, logs the batch and hands it to ``poll``; False if it was re-sent.

        Runs on the log's single thread, so batches are logged one at a time and get their
        offsets in the order they are handed over.
        """
        log = self._log
        with self._progress:
            # The main thread's end counts as closing: a source never closed must not hold the
            # interpreter's exit, which waits for this thread.
            while not self._closing and self._available - self._next >= self.queue_batches and threading.main_thread().is_alive():
                self._progress.wait(1.0)
            if self._closing or log is None or not threading.main_thread().is_alive():
                raise CitystreamError(f"the {self.kind} ingest source is closing")
        offset = log.append(batch, device, batch_sequence)  # outside the condition: polls go on meanwhile
        if offset is None:
            return False
        with self._progress:
            if offset >= self._next:
                self._recent[offset] = batch
            self._available = offset + 1
        return True

    def poll(self) -> pa.RecordBatch | None:
        """The next logged batch (from memory, or from the log after a restore); None if none yet."""
        assert self._log is not None or self._closing, "open() the source first"
        with self._progress:
            if self._closing or self._next >= self._available:
                return None
            offset = self._next
            batch = self._recent.pop(offset, None)
        if batch is None:  # behind the memory after a restore: read back from the log
            assert self._log is not None
            batch = self._log.read(offset).batch
        with self._progress:
            self._next = offset + 1
            self._progress.notify_all()
        return batch

    def snapshot(self) -> Any:
        """The offset of the next batch to poll."""
        with self._progress:
            return self._next

    def restore(self, state: Any) -> None:
        """Polls go on from offset ``state`` (a ``snapshot``), re-reading the log from there.

        Raises:
            StateError: ``state`` is not an offset this log holds (released, or beyond its end).
        """
        assert self._log is not None, "open() the source first"
        first, end = self._log.first_offset, self._log.next_offset
        if isinstance(state, bool) or not isinstance(state, int) or not first <= state <= end:
            raise StateError(
                f"the {self.kind} ingest source cannot restore offset {state!r}: "
                f"its log {self._log} replays from offsets {first}..{end}"
            )
        with self._progress:
            self._next = state
            self._recent = {offset: batch for offset, batch in self._recent.items() if offset >= state}
            self._progress.notify_all()

    def on_commit(self, checkpoint_id: int, state: Any) -> None:
        """Deletes the log's segments that only hold batches before the committed offset."""
        if self._log is None or isinstance(state, bool) or not isinstance(state, int):
            return
        try:
            self._log.release_before(min(state, self._log.next_offset))
        except CitystreamError as exc:
            # Not fatal: the segments stay on disk, and the next commit tries again.
            logger.warning("ingest of %s: checkpoint %d committed, but %s", self.kind, checkpoint_id, exc)

    def close(self) -> None:
        with self._progress:
            self._closing = True
            self._progress.notify_all()  # a device waiting for room gets UNAVAILABLE
        loop, server = self._loop, self._server
        if loop is not None:
            if server is not None:
                asyncio.run_coroutine_threadsafe(server.stop(1.0), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            self._loop = self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # no append in flight when the log closes
            self._executor = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __getstate__(self) -> dict[str, object]:
        # Copied per task and pickled to Ray actors before open(): no threads, files or locks yet.
        state = dict(self.__dict__)
        state.update(_log=None, _loop=None, _server=None, _executor=None, _progress=None, _recent={}, address="")
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._progress = threading.Condition()
