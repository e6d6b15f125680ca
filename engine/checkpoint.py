"""Checkpoints: their options, their storage through ``pyarrow.fs`` (a local directory, or any
URI pyarrow accepts, such as ``s3://bucket/path``), and the coordinator's bookkeeping.

Layout under ``<directory>/<job>/``::

    chk-000007/
        v2-0.state        one file per task: its encoded state (``engine.state``)
        _manifest.json    written last, when every task has reported: the checkpoint is complete

A task file is ``MAGIC``, the length of a msgpack header (u32, little-endian), the header
(``{"task", "small", "spans"}``: the small state and where each table lies), zeros up to a
multiple of 64 bytes, and the Arrow IPC streams of the tables. The manifest gives every task file's size and CRC32, so that a file
cut short or damaged is detected and the checkpoint skipped in favour of the one before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pyarrow as pa
import pyarrow.fs as pafs

from engine.errors import CitystreamError, OptionError
from engine.plan import PhysicalPlan
from engine.state import EncodedState, StateError, decode_state, read_tables

logger = logging.getLogger(__name__)

MAGIC = b"CSCHKPT1"
FORMAT_VERSION = 1
MANIFEST = "_manifest.json"
_LENGTH = struct.Struct("<I")
_ALIGN = 64
_CHECKPOINT_DIR = re.compile(r"chk-(\d+)$")


@dataclass(frozen=True)
class CheckpointOptions:
    """When and where a job checkpoints, and how it recovers.

    Args:
        directory: where checkpoints go: a local path or a URI ``pyarrow.fs`` understands
            (``file:///...``, ``s3://bucket/prefix``, ``gs://...``). Each job writes under
            ``<directory>/<job name>/``.
        interval_s: seconds between the start of two checkpoints (a checkpoint still running
            delays the next one).
        keep: complete checkpoints kept; older ones are deleted.
        timeout_s: a checkpoint not complete after this long is given up.
        max_restarts: recoveries from the last checkpoint before the job fails for good.
        restore: start from the latest complete checkpoint found in ``directory`` (a job that
            was stopped resumes where it was), instead of from the beginning.
        max_held_rows: rows a task may hold from inputs whose barrier came while it waits for
            the barrier on the others; past that it gives the checkpoint up (a warning says so)
            and handles them, so that a slow input never costs unbounded memory.
    """

    directory: str = "checkpoints"
    interval_s: float = 10.0
    keep: int = 3
    timeout_s: float = 120.0
    max_restarts: int = 3
    restore: bool = False
    max_held_rows: int = 1_000_000

    def __post_init__(self) -> None:
        if not isinstance(self.directory, str) or not self.directory:
            raise OptionError("directory", self.directory, "a local path or a URI such as s3://bucket/prefix")
        if not isinstance(self.interval_s, int | float) or self.interval_s < 0:
            raise OptionError("interval_s", self.interval_s, "seconds >= 0")
        if not isinstance(self.keep, int) or self.keep < 1:
            raise OptionError("keep", self.keep, "an integer >= 1")
        if not isinstance(self.timeout_s, int | float) or self.timeout_s <= 0:
            raise OptionError("timeout_s", self.timeout_s, "seconds > 0")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise OptionError("max_restarts", self.max_restarts, "an integer >= 0")
        if not isinstance(self.max_held_rows, int) or self.max_held_rows < 1:
            raise OptionError("max_held_rows", self.max_held_rows, "an integer >= 1")
        if "://" not in self.directory:
            # Resolved here, in the driver: a worker with another working directory must write
            # where the coordinator writes manifests.
            object.__setattr__(self, "directory", os.path.abspath(self.directory))


def task_key(vertex: int, subtask: int) -> str:
    """The name of a task's file in a checkpoint (task names hold characters some stores mind)."""
    return f"v{vertex}-{subtask}"


def plan_fingerprint(plan: PhysicalPlan) -> str:
    """What must not change between a checkpoint and the job restored from it: the vertices,
    their operators, parallelism and edges."""
    return hashlib.sha256(plan.explain().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TaskReport:
    """What a task tells the coordinator once its state is written."""

    key: str
    task: str
    file: str
    size: int
    crc32: int
    write_ms: float


@dataclass
class Checkpoint:
    """A complete checkpoint, as its manifest describes it."""

    checkpoint_id: int
    manifest: dict[str, Any]

    @property
    def size(self) -> int:
        return sum(t["size"] for t in self.manifest["tasks"].values())


class CheckpointStorage:
    """Reads and writes a job's checkpoints through ``pyarrow.fs``."""

    def __init__(self, directory: str, job: str) -> None:
        self.uri = directory
        self.job = job
        if "://" in directory:
            fs, path = pafs.FileSystem.from_uri(directory)
        else:
            fs, path = pafs.LocalFileSystem(), os.path.abspath(directory)
        self.fs: pafs.FileSystem = fs
        self.root = f"{path.rstrip('/')}/{job}"
        self._local = isinstance(fs, pafs.LocalFileSystem)

    def __reduce__(self) -> tuple[Any, ...]:
        # Filesystem handles are rebuilt from the URI in each process that uses the storage.
        return (CheckpointStorage, (self.uri, self.job))

    def directory(self, checkpoint_id: int) -> str:
        return f"{self.root}/chk-{checkpoint_id:06d}"

    # ---- writing --------------------------------------------------------------------------

    def write_task(self, checkpoint_id: int, key: str, task: str, state: EncodedState) -> TaskReport:
        """Writes one task's state; returns what the manifest records of it."""
        started = time.perf_counter()
        blob, spans = state.write_tables()
        header = msgpack.packb({"task": task, "small": state.small, "spans": spans}, use_bin_type=True)
        prefix = MAGIC + _LENGTH.pack(len(header)) + header
        # The tables start on a 64-byte boundary, so that their buffers are aligned when read
        # back in place (compute kernels warn about, and may be slower on, unaligned ones).
        data = prefix + b"\0" * (-len(prefix) % _ALIGN) + blob
        directory = self.directory(checkpoint_id)
        self.fs.create_dir(directory, recursive=True)
        name = f"{key}.state"
        with self.fs.open_output_stream(f"{directory}/{name}") as out:
            out.write(data)
        return TaskReport(key, task, name, len(data), zlib.crc32(data), (time.perf_counter() - started) * 1000)

    def write_manifest(self, checkpoint_id: int, manifest: dict[str, Any]) -> None:
        """Completes a checkpoint: the manifest is the last thing written, in one piece."""
        directory = self.directory(checkpoint_id)
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        if self._local:
            # A rename is atomic on a local disk: no reader ever sees half a manifest.
            with self.fs.open_output_stream(f"{directory}/{MANIFEST}.tmp") as out:
                out.write(data)
            self.fs.move(f"{directory}/{MANIFEST}.tmp", f"{directory}/{MANIFEST}")
        else:  # an object store's PUT is atomic already
            with self.fs.open_output_stream(f"{directory}/{MANIFEST}") as out:
                out.write(data)

    def delete(self, checkpoint_id: int) -> None:
        directory = self.directory(checkpoint_id)
        try:
            if self.fs.get_file_info(directory).type == pafs.FileType.NotFound:
                return  # no task had written yet
            self.fs.delete_dir(directory)
        except (FileNotFoundError, OSError) as exc:
            logger.warning("checkpoint %d of %s could not be deleted: %s", checkpoint_id, self.job, exc)

    # ---- reading --------------------------------------------------------------------------

    def ids(self) -> list[int]:
        """Ids of every checkpoint directory, complete or not, in increasing order."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        except (FileNotFoundError, OSError):
            return []
        found = []
        for info in infos:
            match = _CHECKPOINT_DIR.match(info.base_name)
            if match and info.type == pafs.FileType.Directory:
                found.append(int(match.group(1)))
        return sorted(found)

    def read_manifest(self, checkpoint_id: int) -> dict[str, Any]:
        path = f"{self.directory(checkpoint_id)}/{MANIFEST}"
        try:
            with self.fs.open_input_stream(path) as stream:
                manifest: dict[str, Any] = json.loads(stream.read())
        except FileNotFoundError:
            raise StateError(f"checkpoint {checkpoint_id}: no manifest (it never completed)") from None
        except (OSError, ValueError) as exc:
            raise StateError(f"checkpoint {checkpoint_id}: the manifest cannot be read ({exc})") from exc
        if manifest.get("format") != FORMAT_VERSION or manifest.get("checkpoint_id") != checkpoint_id:
            raise StateError(f"checkpoint {checkpoint_id}: the manifest is not one of format {FORMAT_VERSION} for this id")
        return manifest

    def read_file(self, checkpoint_id: int, entry: dict[str, Any]) -> pa.Buffer:
        """A task file (in Arrow memory: aligned, so tables are read in place), checked against
        the size and CRC32 the manifest gives."""
        path = f"{self.directory(checkpoint_id)}/{entry['file']}"
        try:
            with self.fs.open_input_file(path) as file:
                data = file.read_buffer()
        except FileNotFoundError:
            raise StateError(f"checkpoint {checkpoint_id}: {entry['file']} is missing") from None
        if data.size != entry["size"]:
            raise StateError(
                f"checkpoint {checkpoint_id}: {entry['file']} has {data.size} bytes, the manifest says {entry['size']}"
            )
        if zlib.crc32(memoryview(data)) != entry["crc32"]:
            raise StateError(f"checkpoint {checkpoint_id}: {entry['file']} is damaged (its CRC32 does not match the manifest's)")
        return data

    def read_task(self, checkpoint_id: int, entry: dict[str, Any]) -> Any:
        """One task's decoded state."""
        data = self.read_file(checkpoint_id, entry)
        view = memoryview(data)
        if bytes(view[: len(MAGIC)]) != MAGIC:
            raise StateError(f"checkpoint {checkpoint_id}: {entry['file']} is not a citystream task state")
        (length,) = _LENGTH.unpack_from(view, len(MAGIC))
        start = len(MAGIC) + _LENGTH.size
        header = msgpack.unpackb(view[start : start + length], raw=False)
        tables_at = start + length + (-(start + length) % _ALIGN)
        tables = read_tables(data.slice(tables_at), [tuple(span) for span in header["spans"]])
        return decode_state(header["small"], tables)

    def verify(self, checkpoint_id: int, fingerprint: str) -> Checkpoint:
        """The checkpoint, if it is complete, whole and of this plan.

        Raises:
            StateError: it is not (the message says why).
        """
        manifest = self.read_manifest(checkpoint_id)
        if manifest.get("plan") != fingerprint:
            raise StateError(
                f"checkpoint {checkpoint_id} is of another plan (fingerprint {manifest.get('plan')}, this job's is "
                f"{fingerprint}): operators, parallelism or edges changed"
            )
        for entry in manifest["tasks"].values():
            self.read_file(checkpoint_id, entry)
        return Checkpoint(checkpoint_id, manifest)

    def latest(self, fingerprint: str, since: int = 0) -> Checkpoint | None:
        """The newest complete and whole checkpoint with an id of at least ``since``; damaged
        or partial ones are skipped, with a warning that says why."""
        for checkpoint_id in reversed([i for i in self.ids() if i >= since]):
            try:
                return self.verify(checkpoint_id, fingerprint)
            except (StateError, OSError) as exc:
                logger.warning("job %s: checkpoint %d skipped: %s", self.job, checkpoint_id, exc)
        return None


@dataclass
class _Pending:
    started: float
    reports: dict[str, TaskReport] = field(default_factory=dict)


@dataclass
class CheckpointStats:
    """Figures of the completed checkpoints, for metrics and benchmarks."""

    completed: int = 0
    aborted: int = 0
    last_id: int | None = None
    last_duration_ms: float = 0.0
    last_size: int = 0
    durations_ms: list[float] = field(default_factory=list)


class CheckpointCoordinator:
    """The bookkeeping of a job's checkpoints, whatever hosts the job: ids, which tasks have
    reported, completing (manifest, then commit), giving up, and keeping the last few.

    Args:
        storage: where the checkpoints go.
        plan: the job's plan (its tasks must all report).
        options: interval, retention and timeout.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        storage: CheckpointStorage,
        plan: PhysicalPlan,
        options: CheckpointOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.plan = plan
        self.options = options
        self.clock = clock
        self.fingerprint = plan_fingerprint(plan)
        self.tasks = {task_key(v.id, s): v.task_name(s) for v in plan.vertices for s in range(v.parallelism)}
        existing = storage.ids()
        self.next_id = (existing[-1] + 1) if existing else 1  # ids never repeat, across runs
        self._floor = self.next_id
        self.completed_ids: list[int] = []
        self.pending: dict[int, _Pending] = {}
        self.stats = CheckpointStats()
        self._last_trigger = clock()

    def due(self) -> bool:
        """True when the next checkpoint should start (none running, the interval passed)."""
        return not self.pending and self.clock() - self._last_trigger >= self.options.interval_s

    def begin(self) -> int:
        """A new checkpoint id; the caller triggers the source tasks with it."""
        checkpoint_id = self.next_id
        self.next_id += 1
        self.pending[checkpoint_id] = _Pending(self.clock())
        self._last_trigger = self.clock()
        return checkpoint_id

    def acknowledge(self, checkpoint_id: int, report: TaskReport) -> Checkpoint | None:
        """A task's state is written; returns the checkpoint if it is now complete (its
        manifest written and old checkpoints cleaned up): then commit it on every task."""
        pending = self.pending.get(checkpoint_id)
        if pending is None:
            logger.debug("checkpoint %d: late report from %s ignored", checkpoint_id, report.task)
            return None
        pending.reports[report.key] = report
        if len(pending.reports) < len(self.tasks):
            return None
        duration_ms = (self.clock() - pending.started) * 1000
        manifest = {
            "format": FORMAT_VERSION,
            "job": self.plan.job,
            "checkpoint_id": checkpoint_id,
            "plan": self.fingerprint,
            "completed_at": time.time(),
            "duration_ms": round(duration_ms, 3),
            "tasks": {
                r.key: {"task": r.task, "file": r.file, "size": r.size, "crc32": r.crc32, "write_ms": round(r.write_ms, 3)}
                for r in sorted(pending.reports.values(), key=lambda r: r.key)
            },
        }
        try:
            self.storage.write_manifest(checkpoint_id, manifest)
        except OSError as exc:
            self.abort(checkpoint_id, f"its manifest could not be written: {exc}")
            return None
        del self.pending[checkpoint_id]
        self.completed_ids = [*self.completed_ids[-99:], checkpoint_id]
        checkpoint = Checkpoint(checkpoint_id, manifest)
        self.stats.completed += 1
        self.stats.last_id = checkpoint_id
        self.stats.last_duration_ms = duration_ms
        self.stats.last_size = checkpoint.size
        self.stats.durations_ms = [*self.stats.durations_ms[-999:], duration_ms]
        try:
            self._clean_up(checkpoint_id)
        except OSError as exc:  # the checkpoint is complete all the same
            logger.warning("job %s: old checkpoints could not be cleaned up: %s", self.plan.job, exc)
        logger.info(
            "job %s: checkpoint %d complete in %.1f ms, %d bytes", self.plan.job, checkpoint_id, duration_ms, checkpoint.size
        )
        return checkpoint

    def owed_by_ended(self, key: str, last_checkpoint: int | None) -> list[int]:
        """The pending checkpoints for which an ended task's final state must stand in: it has
        not reported for them, and took no part in them itself (its last checkpoint is older;
        a snapshot of its own may still be on its way otherwise)."""
        return [
            checkpoint_id
            for checkpoint_id, pending in self.pending.items()
            if key not in pending.reports and (last_checkpoint or 0) < checkpoint_id
        ]

    def abort(self, checkpoint_id: int, reason: str, expected: bool = False) -> None:
        """Gives a checkpoint up (a task declined it or failed to write); its files go.
        ``expected``: a normal event (a bounded source ended), logged at info level."""
        if self.pending.pop(checkpoint_id, None) is not None:
            self.stats.aborted += 1
            level = logging.INFO if expected else logging.WARNING
            logger.log(level, "job %s: checkpoint %d given up: %s", self.plan.job, checkpoint_id, reason)
            self.storage.delete(checkpoint_id)

    def abort_expired(self) -> None:
        now = self.clock()
        for checkpoint_id, pending in list(self.pending.items()):
            if now - pending.started > self.options.timeout_s:
                missing = sorted(self.tasks[k] for k in self.tasks if k not in pending.reports)
                self.abort(checkpoint_id, f"not complete after {self.options.timeout_s} s; no report from {missing}")

    def abort_all(self, reason: str, expected: bool = False) -> None:
        for checkpoint_id in list(self.pending):
            self.abort(checkpoint_id, reason, expected)

    def _clean_up(self, completed: int) -> None:
        """Keeps the newest ``keep`` complete checkpoints; drops older ones and partial leftovers."""
        kept = 0
        for checkpoint_id in reversed(self.storage.ids()):
            if checkpoint_id > completed or checkpoint_id in self.pending:
                continue
            if checkpoint_id < self._floor:
                break  # an earlier run's (a savepoint, maybe): not this run's to delete
            complete = checkpoint_id == completed or self._has_manifest(checkpoint_id)
            if complete and kept < self.options.keep:
                kept += 1
                continue
            self.storage.delete(checkpoint_id)

    def _has_manifest(self, checkpoint_id: int) -> bool:
        info = self.storage.fs.get_file_info(f"{self.storage.directory(checkpoint_id)}/{MANIFEST}")
        return bool(info.type == pafs.FileType.File)

    def restorable(self) -> Checkpoint | None:
        """The checkpoint a job started with ``restore`` resumes from: the newest complete and
        whole one in the directory, whichever run wrote it."""
        found = self.storage.latest(self.fingerprint)
        if found is not None:
            self._floor = found.checkpoint_id
        return found

    def oldest_kept(self) -> int | None:
        """The oldest complete checkpoint of this run still kept (what a source must still be
        able to rewind to), or None."""
        kept = [i for i in self.completed_ids if i >= self._floor][-self.options.keep :]
        return kept[0] if kept else None

    def latest(self) -> Checkpoint | None:
        """The checkpoint a recovery restarts from: the newest complete and whole one of this
        run (or the one it was restored from), never one an earlier run of the job left."""
        return self.storage.latest(self.fingerprint, since=self._floor)


def restore_error(job: str, directory: str) -> CitystreamError:
    return CitystreamError(f"job '{job}': no complete checkpoint to restore from under {directory}")
