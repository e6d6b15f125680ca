"""The load test's city and its open-loop sources.

The city is built from a ``Scale`` (districts, cameras, stations, gateways, consoles), with
rules sized for short runs: one-second windows, and no incident from the background traffic,
so that every incident comes from an intrusion the cameras were scheduled to see, and the
number of incidents a run must deliver is known in advance.

The sources are open loop: row ``i`` of the schedule is due at a fixed wall-clock time, is
stamped with that time (``ts``), and is emitted once the clock has passed it, however late the
engine takes it. A stalled pipeline therefore cannot slow the offered load down and hide its
delay (no coordinated omission): the rows pile up and are emitted, still stamped with their
scheduled times, as soon as the source is polled again. Each source also promises its
progress (``Source.progress``): every row it emits later is due later than now, so the
watermark follows the clock even between rows, and a window closes as soon as its end is due.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from actors.schemas import DETECTION, TIME, WEATHER
from actors.topology import City, city_from_dict
from engine.errors import CitystreamError, OptionError
from engine.sources import END_OF_INPUT, EndOfInput, Source

INCHEON = (("songdo", 37.3925, 126.6390), ("yeongjong", 37.4926, 126.4930), ("cheongna", 37.5370, 126.6430))
CLOCK_ACTOR = "citystream-loadtest-clock"
CLOCK_NAMESPACE = "citystream-loadtest"
INTRUDER_TRACKS = 9_000_000_000_000  # track ids of scheduled intruders: never a background track
# The zones of every load-test camera: persons walk in the plaza, vehicles and bicycles go by
# on the road, intruders enter the restricted zone.
ZONES = (
    {"name": "plaza", "kind": "plaza", "x0": 0.3, "y0": 0.0, "x1": 1.0, "y1": 0.5},
    {"name": "road", "kind": "road", "x0": 0.0, "y0": 0.6, "x1": 1.0, "y1": 1.0},
    {"name": "gate", "kind": "restricted", "x0": 0.0, "y0": 0.0, "x1": 0.2, "y1": 0.3},
)
_ZONE_BOUNDS = tuple(np.array([z[k] for z in ZONES], dtype=np.float64) for k in ("x0", "x1", "y0", "y1"))
_BACKGROUND_LABELS = ("person", "vehicle", "bicycle")
_LABEL_PATTERN = np.array([0] * 55 + [1] * 35 + [2] * 10, dtype=np.int64)  # 55 % persons


@dataclass(frozen=True)
class Scale:
    """How big the load-test city is. Cameras and stations are spread over the districts in
    turn; district ``d`` routes to gateway ``d % gateways``; console ``c`` subscribes to gateway
    ``c % gateways``, console 0 of each gateway for every district, the others for one district
    each (so that district scoping is checked too)."""

    districts: int = 3
    cameras: int = 300
    stations: int = 6
    gateways: int = 1
    consoles: int = 2
    camera_tasks: int = 1
    station_tasks: int = 1

    def __post_init__(self) -> None:
        for name in ("districts", "cameras", "stations", "gateways", "consoles", "camera_tasks", "station_tasks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(name, value, "a whole number >= 1")
        if self.cameras < self.districts or self.stations < self.districts:
            raise OptionError("cameras/stations", (self.cameras, self.stations), f"at least one per district ({self.districts})")
        if self.gateways > self.districts:
            raise OptionError("gateways", self.gateways, f"at most one per district ({self.districts})")
        if self.camera_tasks > self.cameras or self.station_tasks > self.stations:
            raise OptionError(
                "camera_tasks/station_tasks", (self.camera_tasks, self.station_tasks), "at most one per camera/station"
            )


@dataclass(frozen=True)
class ConsolePlan:
    """One console of the load test: its gateway, token and the districts it is entitled to."""

    index: int
    gateway: str
    token: str
    districts: tuple[str, ...]


def district_ids(scale: Scale) -> list[str]:
    return [INCHEON[i][0] if i < len(INCHEON) else f"district-{i + 1}" for i in range(scale.districts)]


def gateway_ids(scale: Scale) -> list[str]:
    return [f"loadtest-gateway-{g}" for g in range(scale.gateways)]


def consoles(scale: Scale) -> list[ConsolePlan]:
    districts = district_ids(scale)
    gateways = gateway_ids(scale)
    plans = []
    for c in range(scale.consoles):
        g = c % scale.gateways
        served = [d for i, d in enumerate(districts) if i % scale.gateways == g]
        rank = c // scale.gateways  # 0: the gateway's operations-center console, every district
        scope = tuple(served) if rank == 0 else (served[(rank - 1) % len(served)],)
        plans.append(ConsolePlan(c, gateways[g], f"loadtest-console-{c}", scope))
    return plans


def load_city(scale: Scale, log_dir: str, *, seed: int = 7, checkpoint_dir: str = "", checkpoint_interval_s: float = 0.0) -> City:
    """The load-test city (validated like a config file)."""
    districts = district_ids(scale)

    def where(i: int, of: int) -> tuple[str, float, float]:
        d = i % scale.districts
        base = INCHEON[d % len(INCHEON)]
        ring = (i // scale.districts) / max(of, 1)
        return districts[d], base[1] + 0.02 * math.cos(ring * 6.283) + 0.05 * (d // 3), base[2] + 0.02 * math.sin(ring * 6.283)

    cameras = []
    for i in range(scale.cameras):
        district, lat, lon = where(i, scale.cameras)
        cameras.append({"id": f"cam-{i:05d}", "district": district, "lat": lat, "lon": lon, "zones": [dict(z) for z in ZONES]})
    stations = []
    for i in range(scale.stations):
        district, lat, lon = where(i, scale.stations)
        stations.append({"id": f"aws-{i:04d}", "district": district, "lat": lat, "lon": lon})
    gateways = gateway_ids(scale)
    routes = [
        {"gateway": g, "districts": [d for i, d in enumerate(districts) if i % scale.gateways == n] or ["*"], "kinds": ["*"]}
        for n, g in enumerate(gateways)
    ]
    tokens = [
        {
            "console": f"loadtest-{p.index}",
            "token_sha256": hashlib.sha256(p.token.encode()).hexdigest(),
            "districts": list(p.districts),
        }
        for p in consoles(scale)
    ]
    raw: dict[str, Any] = {
        "name": f"load test: {scale.districts} districts, {scale.cameras} cameras, {scale.stations} stations",
        "simulation": {"seed": seed, "out_of_orderness_ms": 0, "batch_ms": 10},
        "rules": {
            "intrusion_window_s": 1.0,
            "crowd_window_s": 1.0,
            "crowd_min_persons": 1_000_000_000,  # the background never forms a crowd
            "fire_window_s": 1.0,
            "road_window_s": 1.0,
            "loitering_gap_s": 1.0,
            "loitering_min_s": 30.0,  # background tracks last well under a second
            "dust_window_s": 10.0,
            "dust_levels": [2000.0, 3000.0, 4000.0, 5000.0],  # the background's PM10 stays near 40
            "repeat_after_s": 0.0,
        },
        "districts": [{"id": d, "name": d, "lat": INCHEON[i % 3][1], "lon": INCHEON[i % 3][2]} for i, d in enumerate(districts)],
        "cameras": cameras,
        "stations": stations,
        "gateways": [{"id": g, "name": g, "port": 0} for g in gateways],
        "routes": routes,
        "dispatch": {"insecure": True, "log_dir": log_dir, "subscriber_queue": 1_000_000, "ingest_port": -1, "tokens": tokens},
        "checkpoints": {"directory": checkpoint_dir or f"{log_dir}/checkpoints", "interval_s": checkpoint_interval_s},
    }
    return city_from_dict(raw)


# ---- the schedule ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Detections per second over time: ``steps`` of (seconds, detections/s), one after the
    other (a fixed rate is one step; a ramp is several). Intrusions come at ``intrusions_per_s``
    throughout, whatever the detection rate."""

    steps: tuple[tuple[float, float], ...]
    intrusions_per_s: float = 20.0

    def __post_init__(self) -> None:
        if not self.steps:
            raise OptionError("steps", self.steps, "at least one (seconds, detections/s) step")
        for seconds, rate in self.steps:
            if not seconds > 0 or not rate > 0 or math.isinf(seconds) or math.isinf(rate):
                raise OptionError("steps", self.steps, "steps of (seconds > 0, detections/s > 0)")
        if not self.intrusions_per_s >= 0 or math.isinf(self.intrusions_per_s):
            raise OptionError("intrusions_per_s", self.intrusions_per_s, "a finite rate >= 0")

    @property
    def duration_ms(self) -> int:
        return round(sum(s for s, _ in self.steps) * 1000)

    def boundaries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per step: its start (ms from the schedule's start), the rows due before it, its rate."""
        starts, counts, rates = [0.0], [0.0], []
        for seconds, rate in self.steps:
            rates.append(rate)
            starts.append(starts[-1] + seconds * 1000)
            counts.append(counts[-1] + seconds * rate)
        return np.array(starts), np.array(counts), np.array(rates)

    def rate_at(self, elapsed_ms: float) -> float:
        """Detections/s scheduled at ``elapsed_ms`` after the start (0 after the end)."""
        starts, _, rates = self.boundaries()
        if not 0 <= elapsed_ms < starts[-1]:
            return 0.0
        return float(rates[int(np.searchsorted(starts, elapsed_ms, side="right")) - 1])

    def rows_due(self, elapsed_ms: float) -> int:
        """Rows of the whole schedule due at or before ``elapsed_ms`` after its start."""
        starts, counts, rates = self.boundaries()
        t = min(max(elapsed_ms, 0.0), starts[-1])
        j = min(int(np.searchsorted(starts, t, side="right")) - 1, len(rates) - 1)
        return math.floor(counts[j] + (t - starts[j]) * rates[j] / 1000 + 1e-9)

    def total_rows(self) -> int:
        return self.rows_due(float(self.duration_ms))

    def due_ms(self, rows: np.ndarray) -> np.ndarray:
        """When each row (index in the schedule) is due, in ms from the schedule's start:
        rows are spread evenly within a step, row i at the end of its slot, so that exactly
        ``rows_due(t)`` rows are due at or before t."""
        starts, counts, rates = self.boundaries()
        slot_end = rows + 1.0
        j = np.clip(np.searchsorted(counts, slot_end, side="left") - 1, 0, len(rates) - 1)
        return starts[j] + (slot_end - counts[j]) * 1000.0 / rates[j]

    def intrusions_due(self, elapsed_ms: float) -> int:
        """Intrusions due at or before ``elapsed_ms``: intrusion k is due at (k + 0.5) / rate s."""
        if self.intrusions_per_s == 0:
            return 0
        t = min(max(elapsed_ms, 0.0), float(self.duration_ms))
        return max(0, math.floor(t * self.intrusions_per_s / 1000 + 0.5))

    def total_intrusions(self) -> int:
        return self.intrusions_due(float(self.duration_ms))


# ---- the start signal ----------------------------------------------------------------------------


@ray.remote(num_cpus=0)
class StartClock:
    """Holds the wall-clock time (ms) the schedule starts at, once the harness has set it:
    the sources wait for it, so that no row is due before the consoles are subscribed."""

    def __init__(self) -> None:
        self._start_ms: int | None = None

    def start(self, start_ms: int) -> None:
        self._start_ms = start_ms

    def start_ms(self) -> int | None:
        return self._start_ms


class _Scheduled(Source):
    """What both sources share: the start signal, the partition's share of the schedule, the
    place (rows emitted), and the progress promise."""

    replayable = True

    def __init__(self, schedule: Schedule, clock: str | int, max_batch_rows: int, every_ms: float) -> None:
        if max_batch_rows < 1:
            raise OptionError("max_batch_rows", max_batch_rows, "a whole number >= 1")
        if not every_ms >= 0:
            raise OptionError("every_ms", every_ms, "milliseconds >= 0")
        self.schedule = schedule
        self.every_ms = every_ms
        self._next_poll_ms = 0.0
        self.clock = clock
        self.max_batch_rows = max_batch_rows
        self._start_ms: int | None = None
        self._clock_handle: Any = None
        self._next_ask = 0.0
        self._partition = 0
        self._partitions = 1
        self._emitted = 0  # rows of this partition emitted (its place)

    def open(self, partition: int, partitions: int) -> None:
        self._partition, self._partitions = partition, partitions

    def _started(self) -> int | None:
        """The schedule's start, once the harness has given it (asked every 20 ms until then);
        a clock given as a number is the start itself (wall-clock ms)."""
        if self._start_ms is None and isinstance(self.clock, int):
            self._start_ms = self.clock
        if self._start_ms is None and time.monotonic() >= self._next_ask:
            self._next_ask = time.monotonic() + 0.02
            if self._clock_handle is None:
                try:
                    self._clock_handle = ray.get_actor(str(self.clock), namespace=CLOCK_NAMESPACE)
                except ValueError as exc:
                    raise CitystreamError(f"the load test's start clock (actor '{self.clock}') is gone: {exc}") from exc
            self._start_ms = ray.get(self._clock_handle.start_ms.remote())
        return self._start_ms

    def _elapsed(self) -> tuple[int, float] | None:
        """(start, ms since the start) if it is time to look at the schedule again: a source
        caught up with it looks every ``every_ms`` (a camera sends what its last few
        milliseconds saw, not a handful of rows each millisecond); one behind looks at once."""
        start = self._started()
        if start is None:
            return None
        now = time.time() * 1000
        if now < self._next_poll_ms:
            return None
        self._next_poll_ms = now + self.every_ms
        return start, now - start

    def _behind(self) -> None:
        self._next_poll_ms = 0.0

    def _mine(self, total_due: int) -> int:
        """Rows of this partition among the first ``total_due`` of the schedule (row i goes to
        partition i % partitions)."""
        return max(0, (total_due - self._partition + self._partitions - 1) // self._partitions)

    def snapshot(self) -> dict[str, Any]:
        return {"partition": self._partition, "emitted": self._emitted, "start_ms": self._start_ms}

    def restore(self, state: dict[str, Any]) -> None:
        if state["partition"] != self._partition:
            raise CitystreamError(f"a checkpoint of partition {state['partition']} cannot be restored into {self._partition}")
        self._emitted, self._start_ms = state["emitted"], state["start_ms"]

    def progress(self) -> int | None:
        return self._progress

    _progress: int | None = None

    def _caught_up_at(self, start: int, elapsed: float) -> None:
        """Every row due by ``elapsed`` is out: any row still to come is stamped at least
        ``start + floor(elapsed)`` (a row due later in this millisecond is stamped with it)."""
        self._progress = start + math.floor(elapsed) - 1


class ScheduledDetections(_Scheduled):
    """Detections of the load-test cameras on a fixed schedule (open loop).

    Row i of the schedule: camera ``i % cameras`` (so each camera sees rows at an even pace),
    a background person in the plaza, or a vehicle or bicycle on the road, on a track of a few
    rows; its ``ts`` is its due time and ``ingest_time`` the wall clock when it is emitted.
    Intrusion k of the schedule (``Schedule.intrusions_per_s``) is one more row: a person in
    the restricted zone of camera ``k % cameras`` on a track of its own, which raises exactly one
    intrusion incident. The source ends once the schedule has ended (``end_after``: False keeps
    it open, idle, so that the harness decides when the job stops)."""

    def __init__(
        self,
        city: City,
        schedule: Schedule,
        clock: str | int = CLOCK_ACTOR,
        max_batch_rows: int = 20_000,
        end_after: bool = False,
        every_ms: float = 5.0,
    ) -> None:
        super().__init__(schedule, clock, max_batch_rows, every_ms)
        self.schema = DETECTION
        self.end_after = end_after
        self.cameras = pa.array([c.id for c in city.cameras], pa.string())
        self.camera_district = pa.array([c.district for c in city.cameras], pa.string())
        self.lat = np.array([c.lat for c in city.cameras])
        self.lon = np.array([c.lon for c in city.cameras])
        for camera in city.cameras:
            if [z.name for z in camera.zones] != [z["name"] for z in ZONES]:
                raise CitystreamError(f"camera {camera.id} does not have the load test's zones {[z['name'] for z in ZONES]}")
        self.labels = pa.array(list(_BACKGROUND_LABELS) + ["person"], pa.string())  # 3: an intruder
        self.zones = pa.array([z["name"] for z in ZONES], pa.string())
        self.zone_kinds = pa.array([z["kind"] for z in ZONES], pa.string())
        self._intrusions = 0  # intrusions of this partition emitted

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "intrusions": self._intrusions}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self._intrusions = state["intrusions"]

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        paced = self._elapsed()
        if paced is None:
            return None
        start, elapsed = paced
        schedule = self.schedule
        due = self._mine(schedule.rows_due(elapsed))
        intrusions_due = self._mine(schedule.intrusions_due(elapsed))
        count = min(due - self._emitted, self.max_batch_rows)
        extra = intrusions_due - self._intrusions
        caught_up = count == due - self._emitted
        if caught_up:
            self._caught_up_at(start, elapsed)
        else:
            self._behind()
        if count <= 0 and extra <= 0:
            if elapsed >= schedule.duration_ms and self.end_after:
                return END_OF_INPUT
            return None
        local = np.arange(self._emitted, self._emitted + count, dtype=np.int64)
        rows = local * self._partitions + self._partition  # indexes in the whole schedule
        due_ms = schedule.due_ms(rows.astype(np.float64))
        # Intrusions due up to the last row of this batch (or up to now when it is caught up).
        upto = due_ms[-1] if count and not caught_up else elapsed
        k_local = np.arange(self._intrusions, intrusions_due, dtype=np.int64)
        k = k_local * self._partitions + self._partition
        k_due = (k + 0.5) * 1000.0 / schedule.intrusions_per_s if len(k) else np.empty(0)
        keep = k_due <= upto
        k, k_due = k[keep], k_due[keep]
        self._emitted += count
        self._intrusions += len(k)
        return self._batch(start, rows, due_ms, k, k_due)

    def _batch(self, start: int, rows: np.ndarray, due_ms: np.ndarray, k: np.ndarray, k_due: np.ndarray) -> pa.RecordBatch:
        n_cams = len(self.cameras)
        camera = np.concatenate([rows % n_cams, k % n_cams])
        # A background track is a run of 8 rows of one camera (one object: one label); an
        # intruder has a track of its own.
        background = (rows // (n_cams * 8)) * n_cams + rows % n_cams
        label = np.concatenate([_LABEL_PATTERN[(background * 7919) % len(_LABEL_PATTERN)], np.full(len(k), 3)])
        zone = np.where(label == 0, 0, np.where(label == 3, 2, 1))
        track = np.concatenate([background, INTRUDER_TRACKS + k])
        order = np.argsort(np.concatenate([due_ms, k_due]), kind="stable")
        ts = (start + np.floor(np.concatenate([due_ms, k_due]))).astype(np.int64)[order]
        camera, label, zone, track = camera[order], label[order], zone[order], track[order]
        jitter = ((track * 2654435761) % 1000) / 1000.0
        x0, x1, y0, y1 = (bounds[zone] for bounds in _ZONE_BOUNDS)
        n = len(ts)
        now = pa.array(np.full(n, int(time.time() * 1000), dtype=np.int64), pa.int64()).cast(TIME)
        cam = pa.array(camera)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(ts, pa.int64()).cast(TIME),
                self.cameras.take(cam),
                self.camera_district.take(cam),
                pa.array(track, pa.int64()),
                self.labels.take(pa.array(label)),
                pa.array(np.where(label == 3, 0.95, 0.55 + 0.4 * jitter)),
                pa.array(x0 + (x1 - x0) * (0.1 + 0.8 * jitter)),
                pa.array(y0 + (y1 - y0) * (0.1 + 0.8 * jitter)),
                pa.array(self.lat[camera]),
                pa.array(self.lon[camera]),
                self.zones.take(pa.array(zone)),
                self.zone_kinds.take(pa.array(zone)),
                now,
            ],
            schema=DETECTION,
        )


class ScheduledReadings(_Scheduled):
    """Readings of the load-test stations: every station every ``interval_s``, on the same
    clock as the cameras (reading r of the schedule is station ``r % stations``), with calm
    weather (no rule fires on it)."""

    def __init__(
        self,
        city: City,
        schedule: Schedule,
        interval_s: float = 1.0,
        clock: str | int = CLOCK_ACTOR,
        end_after: bool = False,
        every_ms: float = 5.0,
    ) -> None:
        if not interval_s > 0:
            raise OptionError("interval_s", interval_s, "seconds > 0")
        stations = len(city.stations)
        per_s = stations / interval_s
        super().__init__(Schedule(tuple((s, per_s) for s, _ in schedule.steps), 0.0), clock, 100_000, every_ms)
        self.schema = WEATHER
        self.end_after = end_after
        self.stations = pa.array([s.id for s in city.stations], pa.string())
        self.station_district = pa.array([s.district for s in city.stations], pa.string())

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        paced = self._elapsed()
        if paced is None:
            return None
        start, elapsed = paced
        due = self._mine(self.schedule.rows_due(elapsed))
        count = min(due - self._emitted, self.max_batch_rows)
        if count == due - self._emitted:
            self._caught_up_at(start, elapsed)
        else:
            self._behind()
        if count <= 0:
            if elapsed >= self.schedule.duration_ms and self.end_after:
                return END_OF_INPUT
            return None
        rows = np.arange(self._emitted, self._emitted + count, dtype=np.int64) * self._partitions + self._partition
        self._emitted += count
        ts = (start + np.floor(self.schedule.due_ms(rows.astype(np.float64)))).astype(np.int64)
        station = pa.array(rows % len(self.stations))
        wave = np.sin(rows / 97.0)
        n = len(rows)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(ts, pa.int64()).cast(TIME),
                self.stations.take(station),
                self.station_district.take(station),
                pa.array(12.0 + 3.0 * wave),
                pa.array(55.0 + 10.0 * wave),
                pa.array(3.0 + wave),
                pa.array(np.full(n, 270.0)),
                pa.array(np.full(n, 300.0)),
                pa.array(40.0 + 5.0 * wave),
                pa.array(np.full(n, 1013.0)),
                pa.array(np.zeros(n)),
                pa.array(np.full(n, 15_000.0)),
            ],
            schema=WEATHER,
        )
