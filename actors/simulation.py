"""Simulated city feeds: camera detections (persistent tracks, day/night rhythm, incident episodes)
and weather-station readings, as replayable or live sources."""

from __future__ import annotations

import bisect
import copy
import math
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from actors.schemas import DETECTION, LABELS, WEATHER
from actors.topology import Camera, City
from engine.errors import CitystreamError, OptionError
from engine.sources import END_OF_INPUT, EndOfInput, Source
from engine.state import StateError

__all__ = ["CameraFeed", "WeatherFeed", "replay_tables"]

Mode = Literal["replay", "live"]
# Draws positions and directions (unit vectors) for tracks of the given cameras (a camera per track).
_Sampler = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]

KST = timezone(timedelta(hours=9))
_TIME = DETECTION.field("ts").type
DETECTION_PERIOD_MS = 200  # a tracked object is seen about every 200 ms (5 frames/s of analytics)
MAX_BEHIND_PERIODS = 5  # a live feed further behind the clock than this skips ahead

_TICK_S = DETECTION_PERIOD_MS / 1000.0
_TICKS_PER_S = 1000.0 / DETECTION_PERIOD_MS
_TRACK_ID_STRIDE = 10_000_000  # track_id = camera index * stride + per-camera counter

# Share of people out and about by hour of day in Korea (UTC+9), linearly interpolated.
_ACTIVITY_HOURS = (0.0, 3.0, 5.0, 7.0, 9.0, 12.0, 15.0, 18.0, 20.0, 22.0, 24.0)
_ACTIVITY_LEVELS = (0.35, 0.2, 0.22, 0.55, 0.9, 1.0, 0.95, 1.0, 0.9, 0.6, 0.35)

_PERSON, _VEHICLE, _BICYCLE = LABELS.index("person"), LABELS.index("vehicle"), LABELS.index("bicycle")
_FIRE, _SMOKE, _COLLISION = LABELS.index("fire"), LABELS.index("smoke"), LABELS.index("collision")

# Track roles: the everyday traffic and the episodes the incident rules look for.
_BACKGROUND, _CROWD, _LOITERER, _INTRUDER, _FIRE_ROLE, _COLLISION_ROLE, _STOPPED = range(7)
_AVOIDS_RESTRICTED = np.array([True, True, True, False, False, False, False])
# Intruder stages: walking to a point inside the zone, lingering there, walking back out.
_FREE, _APPROACH, _LINGER, _LEAVE = range(4)

_RESTRICTED_MARGIN = 0.015  # law-abiding tracks keep this far from restricted zones
_POSITION_NOISE_CAP = 0.01  # measurement noise never exceeds the margin
_BACKGROUND_PDET = (0.85, 0.97)
_REFILL = 0.5  # share of a missing population spawned per tick

# Spawn mixes (person, vehicle, bicycle): road cameras see mostly vehicles (short dwell, so
# their share of rows is lower than their share of arrivals), the others mostly pedestrians.
_MIX_ROAD = (0.05, 0.93, 0.02)
_MIX_OTHER = (0.76, 0.10, 0.14)
# Everyday traffic by kind (person, vehicle, bicycle, vehicle on a road zone): speed in frame
# widths per second, heading noise in about rad per sqrt(s), stay in seconds (a person's is capped
# below rules.loitering_min_s so that only loiterers loiter), detector confidence.
_EVERYDAY_LABEL = np.array([_PERSON, _VEHICLE, _BICYCLE, _VEHICLE])
_EVERYDAY_SPEED = np.array([[0.02, 0.07], [0.04, 0.12], [0.08, 0.2], [0.15, 0.45]])
_EVERYDAY_TURN = np.array([0.25, 0.08, 0.15, 0.0])
_EVERYDAY_STAY = np.array([[8.0, math.nan], [5.0, 60.0], [5.0, 40.0], [5.0, 60.0]])
_EVERYDAY_CONF = np.array([[0.45, 0.95], [0.6, 0.97], [0.4, 0.85], [0.6, 0.97]])
_EVERYDAY_ROAD = 3
# Where everyday tracks appear, by side (left, right, top, bottom edge, then inside x4): x and y
# ranges, and the sign their direction must have across the edge (inwards; 0: any).
_EDGE_X = np.array([0.002, 0.998, 0.0, 0.0, 0.03, 0.03, 0.03, 0.03])
_EDGE_X_SPAN = np.array([0.0, 0.0, 1.0, 1.0, 0.94, 0.94, 0.94, 0.94])
_EDGE_Y = np.array([0.0, 0.0, 0.002, 0.998, 0.03, 0.03, 0.03, 0.03])
_EDGE_Y_SPAN = np.array([1.0, 1.0, 0.0, 0.0, 0.94, 0.94, 0.94, 0.94])
_EDGE_DX_SIGN = np.array([1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
_EDGE_DY_SIGN = np.array([0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0])

# Episodes. Durations in seconds; the loiterer's stay is a multiple of rules.loitering_min_s,
# the other people's stays stay below it so that only loiterers loiter.
_CROWD_DURATION_S = (90.0, 180.0)
_CROWD_SIZE = (12, 20)  # people in view at the crowd's height (more come and go: 20-30 in 30 s)
_CROWD_RISE, _CROWD_FALL = 0.3, 0.2  # shares of the episode spent forming and dispersing
_CROWD_ACTIVITY = 0.7  # below this share of the daytime crowd (night), crowds form less often (squared)
_LOITER_STAY = (1.3, 2.6)
_INTRUDER_LINGER_S = (8.0, 30.0)
_FIRE_DURATION_S = (40.0, 240.0)
_FIRE_WITH_FLAMES = 0.7  # the others show smoke only
_COLLISION_S = (2.0, 8.0)
_STOPPED_S = (60.0, 240.0)  # the vehicles involved stay on the road


def _wall_ms() -> int:
    """The wall clock in epoch milliseconds (a function, so that tests can move it)."""
    return int(time.time() * 1000)


def _kst_hour(t_ms: float) -> float:
    return (t_ms / 3_600_000.0 + 9.0) % 24.0


def _activity(t_ms: float) -> float:
    """Share of the daytime crowd present at this time (0.2 at 3 am, 1.0 at noon and 6 pm)."""
    hour = _kst_hour(t_ms)
    i = bisect.bisect_right(_ACTIVITY_HOURS, hour) - 1
    h0, h1, a0, a1 = _ACTIVITY_HOURS[i], _ACTIVITY_HOURS[i + 1], _ACTIVITY_LEVELS[i], _ACTIVITY_LEVELS[i + 1]
    return a0 + (a1 - a0) * (hour - h0) / (h1 - h0)


def _directions(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Random unit vectors, uniform in angle (normalised Gaussian pairs)."""
    dx, dy = rng.standard_normal((2, count))
    norm = np.maximum(np.sqrt(dx * dx + dy * dy), 1e-12)
    return dx / norm, dy / norm


def _cos_degrees(degrees: float) -> float:
    """cos by its Taylor series: plain arithmetic, so the same on every machine (the math
    library's last bit may differ between CPUs, and replays must not)."""
    x = degrees / 180.0 * 3.141592653589793
    term, total = 1.0, 1.0
    for n in range(1, 12):
        term *= -x * x / ((2 * n - 1) * (2 * n))
        total += term
    return total


def _stochastic_round(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole numbers with the given expectations: 2.3 becomes 2 or, one time in three, 3."""
    return (expected + rng.random(len(expected))).astype(np.int64)


def _replay_start_ms(start: str) -> int:
    moment = datetime.fromisoformat(start)
    if moment.tzinfo is None:  # a time without offset is Korean time, like the city
        moment = moment.replace(tzinfo=KST)
    return round(moment.timestamp() * 1000)


def _mean(bounds: tuple[float, float]) -> float:
    return (bounds[0] + bounds[1]) / 2.0


class _PacedFeed(Source):
    """What the camera and weather feeds share: partitions, and the clock that paces ``poll``.

    Period ``k`` covers event time [start + k * period, start + (k + 1) * period). A replay
    hands out one period per poll as fast as it is polled; a live feed starts at the wall clock
    and hands a period out once it is due (its end for cameras, its start for readings).

    Replayable: a snapshot holds the clock (start, end and period number: a live feed's start
    is the wall clock at its first opening, which a restored feed must keep to go on from the
    checkpointed period) and the simulation's state, so that a restored feed returns the very
    batches that followed the snapshot (a live one then skips ahead if it is behind the clock).
    """

    _unit = "partition"
    _due_at_end = True
    replayable = True

    def __init__(self, city: City, mode: Mode, duration_s: float | None, seed: int | None) -> None:
        if mode not in ("replay", "live"):
            raise OptionError("mode", mode, "'replay' or 'live'")
        if duration_s is not None and (isinstance(duration_s, bool) or not duration_s >= 0 or math.isinf(duration_s)):
            raise OptionError("duration_s", duration_s, "a finite number of seconds >= 0, or None for an endless feed")
        self.city = city
        self.mode: Mode = mode
        self.duration_s = duration_s
        self.seed = city.simulation.seed if seed is None else seed
        self._start_ms = 0
        self._end_ms: int | None = None
        self._step = 0
        self._partition = 0

    def _partitions(self) -> int:
        raise NotImplementedError

    def _period_ms(self) -> int:
        raise NotImplementedError

    def _open_partition(self, partition: int) -> None:
        raise NotImplementedError

    def _build(self, t_from: int, t_to: int, skipped: bool) -> pa.RecordBatch:
        raise NotImplementedError

    def _simulation_state(self) -> dict[str, Any]:
        """What the partition's simulation changed since it was built (see ``snapshot``)."""
        raise NotImplementedError

    def _restore_simulation(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def open(self, partition: int, partitions: int) -> None:
        needed = self._partitions()
        if partitions != needed:
            raise CitystreamError(
                f"{type(self).__name__} runs one partition per {self._unit}: city '{self.city.name}' has {needed}, "
                f"but the source was opened with {partitions} partitions; set its parallelism to {needed}"
            )
        if not 0 <= partition < partitions:
            raise CitystreamError(f"{type(self).__name__}: partition {partition} is outside 0..{partitions - 1}")
        self._start_ms = _replay_start_ms(self.city.simulation.start) if self.mode == "replay" else _wall_ms()
        self._end_ms = None if self.duration_s is None else self._start_ms + round(self.duration_s * 1000)
        self._step = 0
        self._partition = partition
        self._open_partition(partition)

    def snapshot(self) -> dict[str, Any]:
        # The partition too: a simulation restored into another camera group or station would
        # run with another's tracks and weather.
        return {
            "partition": self._partition,
            "start_ms": self._start_ms,
            "end_ms": self._end_ms,
            "step": self._step,
            "simulation": self._simulation_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state["partition"] != self._partition:
            raise StateError(
                f"{type(self).__name__}: a checkpoint of {self._unit} {state['partition']} cannot be restored "
                f"into {self._unit} {self._partition}"
            )
        self._start_ms, self._end_ms, self._step = state["start_ms"], state["end_ms"], state["step"]
        self._restore_simulation(state["simulation"])

    def poll(self) -> pa.RecordBatch | EndOfInput | None:
        period = self._period_ms()
        t_from = self._start_ms + self._step * period
        if self._end_ms is not None and t_from >= self._end_ms:
            return END_OF_INPUT
        skipped = False
        if self.mode == "live":
            now = _wall_ms()
            due = t_from + (period if self._due_at_end else 0)
            if now < due:
                return None
            behind = (now - due) // period
            if behind > MAX_BEHIND_PERIODS:  # the clock ran away (a paused process): drop the gap
                self._step += behind
                t_from += behind * period
                skipped = True
                if self._end_ms is not None and t_from >= self._end_ms:
                    return END_OF_INPUT
        t_to = t_from + period if self._end_ms is None else min(t_from + period, self._end_ms)
        self._step += 1
        return self._build(t_from, t_to, skipped)


# ---- cameras -------------------------------------------------------------------------------


class CameraFeed(_PacedFeed):
    """Detections of the city's cameras: one partition per camera group, one batch per poll
    covering ``simulation.batch_ms`` of event time for every camera of the group.

    Objects are persistent tracks moving through the frame and seen about every 200 ms; their
    number follows the hour of day in Korea (about ``detections_per_camera_per_s`` rows per
    camera in daytime, a fifth of it at 3 am). Episodes start at random (rates per camera per
    hour): crowds gathering in a plaza zone, loiterers, intrusions into a restricted zone, fire
    and smoke, collisions on a road zone. Rows come in order of arrival: a tenth of them late,
    never by more than ``out_of_orderness_ms``.

    A replay starts at ``simulation.start`` and runs as fast as it is polled, the same for the
    same city, seed and duration on any machine (but ``ingest_time``, the wall clock when the
    batch was built); a live feed follows the wall clock, and skips ahead if it falls behind.

    Example:
        >>> from actors.topology import load_city
        >>> feed = CameraFeed(load_city(), duration_s=1.0)
        >>> feed.open(0, 3)
        >>> feed.poll().schema.equals(DETECTION)
        True
    """

    _unit = "camera group"
    _due_at_end = True

    def __init__(
        self,
        city: City,
        mode: Mode = "replay",
        duration_s: float | None = None,
        seed: int | None = None,
        *,
        crowds_per_hour: float = 5.0,
        loiterers_per_hour: float = 3.0,
        intrusions_per_hour: float = 5.0,
        fires_per_hour: float = 2.0,
        collisions_per_hour: float = 6.0,
    ) -> None:
        """Rates are per camera and hour of daytime: crowds on cameras with a plaza zone (fewer
        at night, like people), intrusions on cameras with a restricted zone, collisions on
        cameras with a road zone; 0 turns an episode off."""
        super().__init__(city, mode, duration_s, seed)
        rates = {
            "crowds_per_hour": crowds_per_hour,
            "loiterers_per_hour": loiterers_per_hour,
            "intrusions_per_hour": intrusions_per_hour,
            "fires_per_hour": fires_per_hour,
            "collisions_per_hour": collisions_per_hour,
        }
        for name, value in rates.items():
            if isinstance(value, bool) or not value >= 0 or math.isinf(value):
                raise OptionError(name, value, "a finite rate >= 0 per camera per hour")
        self.schema = DETECTION
        self.crowds_per_hour = float(crowds_per_hour)
        self.loiterers_per_hour = float(loiterers_per_hour)
        self.intrusions_per_hour = float(intrusions_per_hour)
        self.fires_per_hour = float(fires_per_hour)
        self.collisions_per_hour = float(collisions_per_hour)
        self._sim: _CameraGroup | None = None

    def _partitions(self) -> int:
        return len(self.city.camera_groups())

    def _period_ms(self) -> int:
        return self.city.simulation.batch_ms

    def _open_partition(self, partition: int) -> None:
        self._sim = _CameraGroup(self, partition, self._start_ms)

    def _build(self, t_from: int, t_to: int, skipped: bool) -> pa.RecordBatch:
        assert self._sim is not None, "open() the source first"
        return self._sim.advance(t_from, t_to, skipped)

    def _simulation_state(self) -> dict[str, Any]:
        if self._sim is None:
            raise StateError("CameraFeed: open() the source before taking a snapshot")
        return self._sim.state()

    def _restore_simulation(self, state: dict[str, Any]) -> None:
        if self._sim is None:
            raise StateError("CameraFeed: open() the source before restoring it")
        self._sim.set_state(state)

    def close(self) -> None:
        self._sim = None


Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in the frame


class _RectGrid:
    """The value of the first rectangle that contains a point, per camera, in two binary
    searches: the rectangles' edges cut the plane into cells with one answer each (rectangles
    are half-open, x0 <= x < x1, like the zone rule)."""

    def __init__(self, rects: list[list[tuple[Rect, int]]], default: list[int]) -> None:
        xs = {edge for per_camera in rects for rect, _ in per_camera for edge in (rect[0], rect[2])}
        ys = {edge for per_camera in rects for rect, _ in per_camera for edge in (rect[1], rect[3])}
        self.edges_x = np.array([-math.inf, *sorted(xs), math.inf])
        self.edges_y = np.array([-math.inf, *sorted(ys), math.inf])
        mid_x, mid_y = self._middles(self.edges_x), self._middles(self.edges_y)
        self.grid = np.empty((len(rects), len(mid_x), len(mid_y)), np.int64)
        for i, per_camera in enumerate(rects):
            self.grid[i] = default[i]
            for (x0, y0, x1, y1), value in reversed(per_camera):  # the first one wins
                inside = ((x0 <= mid_x) & (mid_x < x1))[:, None] & ((y0 <= mid_y) & (mid_y < y1))[None, :]
                self.grid[i][inside] = value

    @staticmethod
    def _middles(edges: np.ndarray) -> np.ndarray:
        finite = np.r_[edges[1] - 1.0, edges[1:-1], edges[-2] + 1.0] if len(edges) > 2 else np.array([-1.0, 1.0])
        return (finite[:-1] + finite[1:]) / 2

    def lookup(self, cam: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.grid[cam, np.searchsorted(self.edges_x, x, "right") - 1, np.searchsorted(self.edges_y, y, "right") - 1]


class _Tracks:
    """The objects in view of a camera group: one row per track in a float and an int matrix,
    so that adding and dropping tracks is one operation whatever the number of fields."""

    FLOATS = ("x", "y", "vx", "vy", "speed", "sigma", "conf", "conf_sd", "pdet", "noise", "death", "phase",
              "tx", "ty", "ex", "ey", "linger", "until", "bx0", "by0", "bx1", "by1")  # fmt: skip
    INTS = ("cam", "tid", "label", "role", "stage", "bounce")
    FLOAT_INDEX: ClassVar[dict[str, int]] = {name: i for i, name in enumerate(FLOATS)}
    INT_INDEX: ClassVar[dict[str, int]] = {name: i for i, name in enumerate(INTS)}
    # A field not given is 0, but for these: bounds are the frame, noise and spread typical.
    _DEFAULTS: ClassVar[dict[str, float]] = {"bx1": 1.0, "by1": 1.0, "conf_sd": 0.05, "noise": 0.003}

    def __init__(self) -> None:
        self.floats = np.zeros((0, len(self.FLOATS)))
        self.ints = np.zeros((0, len(self.INTS)), np.int64)
        self.default_row = np.array([self._DEFAULTS.get(name, 0.0) for name in self.FLOATS])

    def __len__(self) -> int:
        return len(self.floats)

    def __getitem__(self, name: str) -> np.ndarray:
        """The field as a view: writing into it writes into the tracks."""
        index = self.FLOAT_INDEX.get(name)
        return self.floats[:, index] if index is not None else self.ints[:, self.INT_INDEX[name]]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        self[name][:] = values

    def add(self, count: int, **values: np.ndarray | float | int) -> None:
        floats = np.tile(self.default_row, (count, 1))
        ints = np.zeros((count, len(self.INTS)), np.int64)
        for name, value in values.items():
            index = self.FLOAT_INDEX.get(name)
            if index is not None:
                floats[:, index] = value
            else:
                ints[:, self.INT_INDEX[name]] = value
        self.floats = np.concatenate([self.floats, floats])
        self.ints = np.concatenate([self.ints, ints])

    def keep(self, mask: np.ndarray) -> None:
        self.floats = self.floats[mask]
        self.ints = self.ints[mask]


# Columns of the track matrices used on the hot path (pairs are adjacent in _Tracks.FLOATS).
_XY, _VXY, _LOW, _HIGH = slice(0, 2), slice(2, 4), slice(18, 20), slice(20, 22)
_SIGMA, _CONF, _CONF_SD, _PDET, _NOISE, _DEATH, _PHASE = (
    _Tracks.FLOAT_INDEX[name] for name in ("sigma", "conf", "conf_sd", "pdet", "noise", "death", "phase")
)
_CAM, _ROLE, _STAGE, _BOUNCE = (_Tracks.INT_INDEX[name] for name in ("cam", "role", "stage", "bounce"))
_CAM_TID_LABEL = slice(0, 3)
_TURN_SIGNS = np.array([-1.0, 1.0])
assert [_Tracks.FLOATS[i] for i in (0, 1, 2, 3, 18, 19, 20, 21)] == ["x", "y", "vx", "vy", "bx0", "by0", "bx1", "by1"]
assert _Tracks.INTS[:3] == ("cam", "tid", "label")


class _CameraGroup:
    """The simulation of one camera group: its tracks, its episodes and its pending rows."""

    def __init__(self, feed: CameraFeed, partition: int, start_ms: int) -> None:
        city = feed.city
        rules = city.rules
        self.rng = np.random.default_rng([feed.seed, partition])
        cameras: list[Camera] = city.camera_groups()[partition]
        n = self.n = len(cameras)
        self.loitering_min_s = rules.loitering_min_s
        self.intrusion_min_confidence = rules.intrusion_min_confidence
        self.fire_min_confidence = rules.fire_min_confidence
        self.road_min_confidence = rules.road_min_confidence
        self.start_ms = start_ms
        self.next_tick = start_ms
        margin_ms = 0.8 * city.simulation.out_of_orderness_ms
        self.max_delay_ms = margin_ms
        self.usual_delay_ms = min(40.0, margin_ms)
        self.id_base = np.array([city.cameras.index(c) * _TRACK_ID_STRIDE for c in cameras], np.int64)
        self.id_counter = np.zeros(n, np.int64)
        self._zones(cameras)
        self._geometry(cameras)

        # Episode start probabilities per tick: (crowd, loiterer, intrusion, fire, collision) x camera.
        per_tick = _TICK_S / 3600.0
        eligible = np.array([self.has_plaza, np.ones(n, bool), self.has_restricted, np.ones(n, bool), self.has_road])
        rates = np.array(
            [
                feed.crowds_per_hour,
                feed.loiterers_per_hour,
                feed.intrusions_per_hour,
                feed.fires_per_hour,
                feed.collisions_per_hour,
            ]
        )
        self.episode_p = rates[:, None] * per_tick * eligible
        self.episode_total = float(self.episode_p.sum())
        self.crowd_total = float(self.episode_p[0].sum())
        self.crowd_start = np.zeros(n)
        self.crowd_end = np.zeros(n)
        self.crowd_size = np.zeros(n)
        self.crowds_until = 0.0  # the end of the last crowd

        # The everyday population makes up what the episodes do not, so that a camera yields
        # about detections_per_camera_per_s rows in daytime, on average over the episodes' comings
        # and goings (never less than 60% of it: a plaza does not empty between crowds).
        rate = city.simulation.detections_per_camera_per_s
        seen = _TICKS_PER_S
        episode_rows = (
            self.has_plaza * feed.crowds_per_hour * _mean(_CROWD_DURATION_S) * _mean(_CROWD_SIZE) * 0.7 * seen * 0.87
            + feed.loiterers_per_hour * self.loitering_min_s * _mean(_LOITER_STAY) * seen * 0.93
            + self.has_restricted * feed.intrusions_per_hour * (_mean(_INTRUDER_LINGER_S) + 8.0) * seen * 0.9
            + feed.fires_per_hour * _mean(_FIRE_DURATION_S) * (1.0 + _FIRE_WITH_FLAMES) * seen * 0.75
            + self.has_road * feed.collisions_per_hour * (_mean(_COLLISION_S) + 2 * _mean(_STOPPED_S)) * seen * 0.88
        ) / 3600.0
        background_rows = np.maximum(0.6 * rate, rate - episode_rows)
        self.population = background_rows / (seen * _mean(_BACKGROUND_PDET))
        self.everyday_stay = _EVERYDAY_STAY.copy()
        self.everyday_stay[0, 1] = 0.8 * self.loitering_min_s
        self.mix = np.cumsum(np.where(self.has_road[:, None], _MIX_ROAD, _MIX_OTHER), axis=1)
        # How busy each camera is, around 1 (+-15%), drifting over about 5 minutes.
        self.busy_decay = 1.0 - _TICK_S / 300.0
        self.busy_kick = 0.15 * math.sqrt(1 - self.busy_decay**2)
        self.busy = 1.0 + self.rng.normal(0.0, 0.15, n)

        self.tracks = _Tracks()
        self._warm_start(start_ms, feed.crowds_per_hour)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # rows not arrived yet: ints, floats

    # -- checkpoints -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the simulation changes after it was built: the random generator, the clock
        (a live group's start is the wall clock when it was opened), track ids given out, how busy
        each camera is, the crowds, the tracks and the rows not arrived yet. The zones, geometry
        and rates follow from the city and are built again by ``open``. Arrays are copied: the
        simulation changes its own in place."""
        return {
            "rng": self.rng.bit_generator.state,
            "start_ms": self.start_ms,
            "next_tick": self.next_tick,
            "refill": float(self.refill),
            "busy": self.busy.copy(),
            "id_counter": self.id_counter.copy(),
            "crowd_start": self.crowd_start.copy(),
            "crowd_end": self.crowd_end.copy(),
            "crowd_size": self.crowd_size.copy(),
            "crowds_until": float(self.crowds_until),
            "track_floats": self.tracks.floats.copy(),
            "track_ints": self.tracks.ints.copy(),
            "pending": [[rows.copy(), values.copy()] for rows, values in self.pending],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Goes back to what ``state`` returned (arrays copied: a state may be restored twice)."""
        self.rng.bit_generator.state = state["rng"]
        self.start_ms = int(state["start_ms"])
        self.next_tick = int(state["next_tick"])
        self.refill = float(state["refill"])
        self.busy = np.array(state["busy"], np.float64)
        self.id_counter = np.array(state["id_counter"], np.int64)
        self.crowd_start = np.array(state["crowd_start"], np.float64)
        self.crowd_end = np.array(state["crowd_end"], np.float64)
        self.crowd_size = np.array(state["crowd_size"], np.float64)
        self.crowds_until = float(state["crowds_until"])
        self.tracks.floats = np.array(state["track_floats"], np.float64).reshape(-1, len(_Tracks.FLOATS))
        self.tracks.ints = np.array(state["track_ints"], np.int64).reshape(-1, len(_Tracks.INTS))
        self.pending = [
            (np.array(rows, np.int64).reshape(5, -1), np.array(values, np.float64).reshape(3, -1))
            for rows, values in state["pending"]
        ]

    def _warm_start(self, t: int, crowds_per_hour: float) -> None:
        """The city was alive before the feed started: the first tick fills the scene at once,
        and crowds may already be gathered (as often as a random moment would find them)."""
        self.refill = 1.0
        share = min(1.0, _activity(t) / _CROWD_ACTIVITY) ** 2
        ongoing = min(0.9, crowds_per_hour * share / 3600.0 * _mean(_CROWD_DURATION_S))
        u = self.rng.random((2, self.n))
        for camera in (self.has_plaza & (u[0] < ongoing)).nonzero()[0]:
            self._start_crowd(int(camera), t, already=float(u[1, camera]))

    # -- static geometry -----------------------------------------------------------------

    def _zones(self, cameras: list[Camera]) -> None:
        """Zone look-ups, the rectangles episodes use, and the strings of the rows.

        The strings of a row (camera, district, zone, kind, label) follow from its zone slot
        (a zone, or "no zone" of a camera) and its label: rows of a small table, taken at once."""
        n = self.n
        names: list[str] = []
        kinds: list[str] = []
        zones: list[list[tuple[Rect, int]]] = [[] for _ in cameras]
        keep_out: list[list[tuple[Rect, int]]] = [[] for _ in cameras]
        restricted: list[list[Rect]] = [[] for _ in cameras]
        self.plaza_rect = np.zeros((n, 4))
        self.road_rect = np.zeros((n, 4))
        self.has_plaza = np.zeros(n, bool)
        self.has_road = np.zeros(n, bool)
        m = _RESTRICTED_MARGIN
        for i, camera in enumerate(cameras):
            for zone in camera.zones:
                rect = (zone.x0, zone.y0, zone.x1, zone.y1)
                zones[i].append((rect, len(names)))
                names.append(zone.name)
                kinds.append(zone.kind)
                if zone.kind == "restricted":
                    restricted[i].append(rect)
                    # Everyday tracks keep a margin from restricted zones, wider than their noise.
                    keep_out[i].append(((zone.x0 - m, zone.y0 - m, zone.x1 + m, zone.y1 + m), 1))
                elif zone.kind == "plaza" and not self.has_plaza[i]:
                    self.plaza_rect[i], self.has_plaza[i] = rect, True
                elif zone.kind == "road" and not self.has_road[i]:
                    self.road_rect[i], self.has_road[i] = rect, True
        self.zone_slots = _RectGrid(zones, [len(names) + i for i in range(n)])
        self.keep_out = _RectGrid(keep_out, [0] * n)
        self.restricted = restricted
        self.has_restricted = np.array([bool(r) for r in restricted])
        owner = [i for i, camera in enumerate(cameras) for _ in camera.zones] + list(range(n))
        slot_zone = [*names, *[None] * n]
        slot_kind = [*kinds, *[None] * n]
        rows = [(slot, label) for slot in range(len(owner)) for label in LABELS]
        self.strings = pa.RecordBatch.from_arrays(
            [
                pa.array([cameras[owner[slot]].id for slot, _ in rows], pa.string()),
                pa.array([cameras[owner[slot]].district for slot, _ in rows], pa.string()),
                pa.array([slot_zone[slot] for slot, _ in rows], pa.string()),
                pa.array([slot_kind[slot] for slot, _ in rows], pa.string()),
                pa.array([label for _, label in rows], pa.string()),
            ],
            names=["camera", "district", "zone", "zone_kind", "label"],
        )

    def _geometry(self, cameras: list[Camera]) -> None:
        """Where a frame position lies on the map: each camera looks along a heading over a
        ground patch of tens of metres (fixed per camera, whatever the seed). Map position is
        linear in the frame position: base + x * along_x + y * along_y, latitude and longitude."""
        placement = [np.random.default_rng(zlib.crc32(c.id.encode())) for c in cameras]
        width, depth, near = np.array([rng.uniform((30, 40, 5), (60, 90, 15)) for rng in placement]).T
        sin, cos = (np.array(v) for v in zip(*(_directions(rng, 1) for rng in placement), strict=True))  # where it looks
        sin, cos = sin[:, 0], cos[:, 0]
        lat = np.array([c.lat for c in cameras])
        lon = np.array([c.lon for c in cameras])
        per_lat, per_lon = 1 / 111_320.0, 1 / (111_320.0 * np.array([_cos_degrees(c.lat) for c in cameras]))  # deg per metre
        # east = (x - 0.5) * width * cos + (near + (1 - y) * depth) * sin; north likewise, turned.
        self.geo_base = np.array(
            [
                lat + ((near + depth) * cos + 0.5 * width * sin) * per_lat,
                lon + ((near + depth) * sin - 0.5 * width * cos) * per_lon,
            ]
        )
        self.geo_x = np.array([-width * sin * per_lat, width * cos * per_lon])
        self.geo_y = np.array([-depth * cos * per_lat, -depth * sin * per_lon])

    def _in_keep_out(self, cam: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.keep_out.lookup(cam, x, y).astype(bool)

    # -- the clock -------------------------------------------------------------------------

    def advance(self, t_from: int, t_to: int, skipped: bool) -> pa.RecordBatch:
        """Simulates the ticks in [t_from, t_to) and returns the rows that arrived then."""
        if skipped:  # the scene moved on in the gap: start it afresh
            ticks = -(-(t_from - self.start_ms) // DETECTION_PERIOD_MS)
            self.next_tick = max(self.next_tick, self.start_ms + ticks * DETECTION_PERIOD_MS)
            self.tracks.keep(self.tracks["death"] > self.next_tick)
            self.refill = 1.0
        while self.next_tick < t_to:
            self._tick(self.next_tick)
            self.next_tick += DETECTION_PERIOD_MS
        return self._emit(t_from if skipped else None, t_to)

    def _tick(self, t: int) -> None:
        activity = _activity(t)
        self.busy = 1.0 + (self.busy - 1.0) * self.busy_decay + self.rng.standard_normal(self.n) * self.busy_kick
        self._start_episodes(t, activity)
        self._spawn_background(t, activity)
        self._spawn_crowds(t)
        self.refill = _REFILL
        self._move(t)
        self._detect(t)

    # -- spawning ----------------------------------------------------------------------------

    def _new_ids(self, cam: np.ndarray) -> np.ndarray:
        """Fresh track ids for tracks of these cameras (sorted by camera, as spawns come)."""
        rank = np.arange(len(cam)) - np.searchsorted(cam, cam, side="left")  # n-th new track of its camera
        ids = self.id_base[cam] + (self.id_counter[cam] + rank) % _TRACK_ID_STRIDE
        self.id_counter += np.bincount(cam, minlength=self.n)
        return ids

    def _place(self, cam: np.ndarray, sample: _Sampler) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positions (and directions) drawn by ``sample`` outside the restricted zones; a few
        rounds of redrawing, then the few still inside are dropped (the returned mask)."""
        x, y, dx, dy = sample(cam)
        bad = self._in_keep_out(cam, x, y)
        for _ in range(6):
            if not np.count_nonzero(bad):
                break
            redo = bad.nonzero()[0]
            x[redo], y[redo], dx[redo], dy[redo] = sample(cam[redo])
            bad[redo] = self._in_keep_out(cam[redo], x[redo], y[redo])
        return x, y, dx, dy, ~bad

    def _anywhere(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Half enter at an edge heading inwards, half appear inside (from a door, behind a bus)."""
        k = len(cam)
        u = self.rng.random((3, k))
        side = (u[0] * 8).astype(np.int64)  # 0-3: left, right, top, bottom edge; 4-7: inside
        x = _EDGE_X[side] + _EDGE_X_SPAN[side] * u[1]
        y = _EDGE_Y[side] + _EDGE_Y_SPAN[side] * u[2]
        dx, dy = _directions(self.rng, k)
        sx, sy = _EDGE_DX_SIGN[side], _EDGE_DY_SIGN[side]
        return x, y, np.where(sx != 0, sx * np.abs(dx), dx), np.where(sy != 0, sy * np.abs(dy), dy)

    def _on_road(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng, k = self.rng, len(cam)
        y0, y1 = self.road_rect[cam, 1], self.road_rect[cam, 3]
        eastbound = rng.random(k) < 0.5
        x = np.where(eastbound, 0.002, 0.998)
        y = y0 + 0.05 * (y1 - y0) + rng.random(k) * 0.9 * (y1 - y0)
        return x, y, np.where(eastbound, 1.0, -1.0), np.zeros(k)

    def _in_plaza(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng, k = self.rng, len(cam)
        x0, y0, x1, y1 = self.plaza_rect[cam].T
        x = x0 + 0.02 + rng.random(k) * (x1 - x0 - 0.04)
        y = y0 + 0.02 + rng.random(k) * (y1 - y0 - 0.04)
        return x, y, *_directions(rng, k)

    def _inner(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng, k = self.rng, len(cam)
        return rng.uniform(0.1, 0.9, k), rng.uniform(0.1, 0.9, k), *_directions(rng, k)

    def _spawn_background(self, t: int, activity: float) -> None:
        """Replaces the everyday people and vehicles that left, towards the hour's population."""
        tracks, rng = self.tracks, self.rng
        target = activity * self.busy * self.population
        present = np.bincount(tracks["cam"][tracks["role"] == _BACKGROUND], minlength=self.n)
        counts = _stochastic_round(np.maximum(target - present, 0.0) * self.refill, rng)
        if not np.count_nonzero(counts):
            return
        cam = np.repeat(np.arange(self.n), counts)
        k = len(cam)
        u = rng.random((5, k))
        kind = (u[0][:, None] > self.mix[cam]).sum(axis=1).clip(0, 2)
        road = (kind == 1) & self.has_road[cam]
        kind[road] = _EVERYDAY_ROAD
        x, y, dx, dy, ok = self._place(cam, self._anywhere)
        if np.count_nonzero(road):
            where = road.nonzero()[0]
            x[where], y[where], dx[where], dy[where], ok[where] = self._place(cam[where], self._on_road)
        speed, stay, conf = (table[kind, 0] + (table[kind, 1] - table[kind, 0]) * u[i + 1]
                             for i, table in enumerate((_EVERYDAY_SPEED, self.everyday_stay, _EVERYDAY_CONF)))  # fmt: skip
        pdet = _BACKGROUND_PDET[0] + (_BACKGROUND_PDET[1] - _BACKGROUND_PDET[0]) * u[4]
        label = _EVERYDAY_LABEL[kind]
        sigma = _EVERYDAY_TURN[kind]
        self._add(t, ok, cam, label, _BACKGROUND, x, y, (dx, dy), speed, sigma=sigma, stay=stay, conf=conf, pdet=pdet)

    def _add(
        self,
        t: int,
        ok: np.ndarray,
        cam: np.ndarray,
        label: np.ndarray | int,
        role: np.ndarray | int,
        x: np.ndarray,
        y: np.ndarray,
        direction: tuple[np.ndarray | float, np.ndarray | float],
        speed: np.ndarray | float,
        *,
        stay: np.ndarray | float,
        conf: np.ndarray | float,
        pdet: np.ndarray | float,
        **extra: np.ndarray | float | int,
    ) -> None:
        """Adds the tracks where ``ok``, leaving view after ``stay`` seconds (if not before)."""
        k = len(cam)
        columns: dict[str, np.ndarray | float | int] = {
            "cam": cam,
            "label": label,
            "role": role,
            "x": x,
            "y": y,
            "vx": speed * direction[0],
            "vy": speed * direction[1],
            "speed": speed,
            "death": t + np.broadcast_to(np.asarray(stay, float), (k,)) * 1000.0,
            "conf": conf,
            "pdet": pdet,
            "phase": self.rng.uniform(0.0, DETECTION_PERIOD_MS - 15, k),
            **extra,
        }
        keep = np.flatnonzero(ok)
        if not len(keep):
            return
        picked = {
            name: value[keep] if isinstance(value, np.ndarray) and value.shape == (k,) else value
            for name, value in columns.items()
        }
        picked["tid"] = self._new_ids(cam[keep])
        self.tracks.add(len(keep), **picked)

    def _start_episodes(self, t: int, activity: float) -> None:
        """At most one episode starts per tick and camera group: the chances are so small (about
        1e-4) that one draw against their sum, then a pick among them, gives the same rates."""
        u = self.rng.random()
        crowd_share = min(1.0, activity / _CROWD_ACTIVITY) ** 2  # crowds need many people out: rare at night
        if u >= self.episode_total - self.crowd_total * (1.0 - crowd_share):
            return
        chances = self.episode_p.copy()
        chances[0] *= crowd_share
        kind, camera = np.unravel_index(int(np.searchsorted(np.cumsum(chances), u, "right")), chances.shape)
        if kind == 0 and t < self.crowd_end[camera]:
            return  # one crowd at a time per camera
        starters = (self._start_crowd, self._start_loiterer, self._start_intruder, self._start_fire, self._start_collision)
        starters[kind](int(camera), t)

    def _start_crowd(self, camera: int, t: int, already: float = 0.0) -> None:
        """A crowd gathers in the camera's plaza: people arrive, mill about and leave while the
        crowd forms, holds and disperses (``_spawn_crowds`` keeps its numbers). ``already``:
        the share of its life it has lived at ``t``."""
        length = self.rng.uniform(*_CROWD_DURATION_S) * 1000.0
        self.crowd_start[camera] = t - already * length
        self.crowd_end[camera] = self.crowd_start[camera] + length
        self.crowd_size[camera] = self.rng.integers(_CROWD_SIZE[0], _CROWD_SIZE[1] + 1)
        self.crowds_until = max(self.crowds_until, self.crowd_end[camera])

    def _spawn_crowds(self, t: int) -> None:
        """Brings the people of each gathering crowd up to its size at this point of its life."""
        if t >= self.crowds_until:
            return
        active = (t >= self.crowd_start) & (t < self.crowd_end)
        rng, tracks = self.rng, self.tracks
        share = np.where(active, (t - self.crowd_start) / np.maximum(self.crowd_end - self.crowd_start, 1.0), 0.0)
        ramp = np.minimum(np.minimum(share / _CROWD_RISE, (1 - share) / _CROWD_FALL), 1.0)
        envelope = ramp * ramp * (3 - 2 * ramp)  # forms and disperses smoothly
        present = np.bincount(tracks["cam"][tracks["role"] == _CROWD], minlength=self.n)
        counts = _stochastic_round(np.maximum(active * self.crowd_size * envelope - present, 0.0) * self.refill, rng)
        if not np.count_nonzero(counts):
            return
        cam = np.repeat(np.arange(self.n), counts)
        k = len(cam)
        x, y, dx, dy, ok = self._place(cam, self._in_plaza)
        x0, y0, x1, y1 = self.plaza_rect[cam].T
        self._add(
            t,
            ok,
            cam,
            _PERSON,
            _CROWD,
            x,
            y,
            (dx, dy),
            rng.uniform(0.003, 0.015, k),
            sigma=0.6,
            stay=rng.uniform(0.3, 0.85, k) * self.loitering_min_s,
            conf=rng.uniform(0.5, 0.92, k),
            pdet=rng.uniform(0.8, 0.95, k),
            bounce=1,
            bx0=x0 + 0.01,
            by0=y0 + 0.01,
            bx1=x1 - 0.01,
            by1=y1 - 0.01,
        )

    def _start_loiterer(self, camera: int, t: int) -> None:
        """A person who hangs about, slowly, for longer than the loitering rule allows."""
        rng = self.rng
        cam = np.array([camera])
        x, y, dx, dy, ok = self._place(cam, self._inner)
        self._add(
            t,
            ok,
            cam,
            _PERSON,
            _LOITERER,
            x,
            y,
            (dx, dy),
            rng.uniform(0.002, 0.01),
            sigma=0.8,
            stay=rng.uniform(*_LOITER_STAY) * self.loitering_min_s,
            conf=rng.uniform(0.55, 0.9),
            pdet=rng.uniform(0.9, 0.97),
            bounce=1,
            bx0=0.03,
            by0=0.03,
            bx1=0.97,
            by1=0.97,
        )

    def _start_intruder(self, camera: int, t: int) -> None:
        """A person walks from outside to a point well inside a restricted zone, lingers, walks back."""
        rng = self.rng
        x0, y0, x1, y1 = self.restricted[camera][rng.integers(len(self.restricted[camera]))]
        tx = x0 + (x1 - x0) * rng.uniform(0.3, 0.7)
        ty = y0 + (y1 - y0) * rng.uniform(0.3, 0.7)
        ux, uy = _directions(rng, 16)
        reach = rng.uniform(0.12, 0.35, 16) + max(x1 - x0, y1 - y0) / 2
        sx = np.clip(tx + reach * ux, 0.03, 0.97)
        sy = np.clip(ty + reach * uy, 0.03, 0.97)
        outside = np.flatnonzero(~self._in_keep_out(np.full(16, camera), sx, sy))
        if not len(outside):
            return  # the zone fills the frame: nowhere to come from
        sx0, sy0 = sx[outside[0]], sy[outside[0]]
        low = self.intrusion_min_confidence
        self._add(
            t,
            np.array([True]),
            np.array([camera]),
            _PERSON,
            _INTRUDER,
            np.array([sx0]),
            np.array([sy0]),
            (0.0, 0.0),
            rng.uniform(0.04, 0.08),
            stay=600.0,
            conf=rng.uniform(min(low + 0.12, 0.95), min(low + 0.35, 0.97)),
            conf_sd=0.04,
            pdet=rng.uniform(0.88, 0.96),
            stage=_APPROACH,
            tx=tx,
            ty=ty,
            ex=sx0,
            ey=sy0,
            linger=rng.uniform(*_INTRUDER_LINGER_S),
        )

    def _start_fire(self, camera: int, t: int) -> None:
        """Flames (most of the time) and the smoke rising above them."""
        rng = self.rng
        x, y = rng.uniform(0.1, 0.9), rng.uniform(0.35, 0.9)
        duration = rng.uniform(*_FIRE_DURATION_S)
        low = self.fire_min_confidence
        cam = np.array([camera])
        if rng.random() < _FIRE_WITH_FLAMES:
            self._add(
                t,
                np.array([True]),
                cam,
                _FIRE,
                _FIRE_ROLE,
                np.array([x]),
                np.array([y]),
                (0.0, 0.0),
                0.0,
                stay=duration,
                conf=rng.uniform(min(low + 0.15, 0.9), 0.95),
                conf_sd=0.06,
                pdet=0.75,
                noise=0.006,
            )
        smoke_y = max(0.03, y - rng.uniform(0.08, 0.2))
        self._add(
            t,
            np.array([True]),
            cam,
            _SMOKE,
            _FIRE_ROLE,
            np.array([x]),
            np.array([smoke_y]),
            (0.0, -1.0),  # rising
            rng.uniform(0.0005, 0.0015),
            stay=duration + 30.0,
            conf=rng.uniform(min(low + 0.1, 0.9), 0.9),
            conf_sd=0.07,
            pdet=0.75,
            noise=0.01,
            bounce=1,
            by0=0.01,
        )

    def _start_collision(self, camera: int, t: int) -> None:
        """A collision seen for a few seconds, and the two vehicles stopped on the road after it."""
        rng = self.rng
        y0, y1 = self.road_rect[camera, 1], self.road_rect[camera, 3]
        x = rng.uniform(0.15, 0.85)
        y = y0 + (y1 - y0) * rng.uniform(0.2, 0.8)
        cam = np.full(3, camera)
        xs = np.array([x, min(0.99, x + rng.uniform(0.02, 0.05)), max(0.01, x - rng.uniform(0.02, 0.05))])
        ys = np.array([y, y + rng.uniform(-0.02, 0.02), y + rng.uniform(-0.02, 0.02)])
        low = self.road_min_confidence
        stay = np.array([rng.uniform(*_COLLISION_S), *rng.uniform(*_STOPPED_S, 2)])
        conf = np.array([rng.uniform(min(low + 0.1, 0.9), 0.96), *rng.uniform(0.7, 0.95, 2)])
        labels, roles = np.array([_COLLISION, _VEHICLE, _VEHICLE]), np.array([_COLLISION_ROLE, _STOPPED, _STOPPED])
        self._add(
            t,
            np.ones(3, bool),
            cam,
            labels,
            roles,
            xs,
            ys,
            (0.0, 0.0),
            0.0,
            stay=stay,
            conf=conf,
            pdet=np.array([0.85, 0.9, 0.9]),
        )

    # -- motion and detection ------------------------------------------------------------

    def _move(self, t: int) -> None:
        tracks, rng = self.tracks, self.rng
        n = len(tracks)
        if not n:
            return
        floats, ints = tracks.floats, tracks.ints
        position, velocity = floats[:, _XY], floats[:, _VXY]
        # Headings wander: each velocity turns by a random angle a, (vx, vy) -> (vx cos a - vy sin a,
        # vx sin a + vy cos a), with cos and sin from h = tan(a / 2) in plain arithmetic (exact
        # rotations, the same on every machine).
        h = rng.standard_normal(n) * floats[:, _SIGMA] * (0.5 * math.sqrt(_TICK_S))
        h2 = h * h
        cos, sin = (1 - h2) / (1 + h2), 2 * h / (1 + h2)
        step = velocity * cos[:, None] + velocity[:, ::-1] * (sin[:, None] * _TURN_SIGNS)
        gone = np.zeros(n, bool)
        steering = (ints[:, _STAGE] != _FREE).nonzero()[0]
        if len(steering):
            gone[steering] = self._steer(t, steering, step)
        moved = position + step * _TICK_S
        bounce = ints[:, _BOUNCE] == 1
        if np.count_nonzero(bounce):  # bounce off the walls of their box (crowds, loiterers, smoke)
            low, high, walled = floats[:, _LOW], floats[:, _HIGH], bounce[:, None]
            under, over = walled & (moved < low), walled & (moved > high)
            moved = np.where(under, 2 * low - moved, np.where(over, 2 * high - moved, moved))
            step = np.where(under, np.abs(step), np.where(over, -np.abs(step), step))
            moved = np.where(walled, np.minimum(np.maximum(moved, low), high), moved)
        # Everyday people and vehicles turn back at a restricted zone rather than enter it.
        avoid = _AVOIDS_RESTRICTED[ints[:, _ROLE]] & self._in_keep_out(ints[:, _CAM], moved[:, 0], moved[:, 1])
        if np.count_nonzero(avoid):
            moved[avoid] = position[avoid]
            step[avoid] = -step[avoid]
        outside = (moved < 0) | (moved >= 1)
        left_frame = (outside[:, 0] | outside[:, 1]) & ~bounce
        floats[:, _XY] = moved
        floats[:, _VXY] = step
        dead = gone | left_frame | (t >= floats[:, _DEATH])
        if np.count_nonzero(dead):
            tracks.keep(~dead)

    def _steer(self, t: int, index: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Intruders head for their point in the zone, hover there, then head back out; returns
        which of ``index`` reached the way out."""
        tracks, rng = self.tracks, self.rng
        stage = tracks["stage"][index]
        leaving = stage == _LEAVE
        lingering = stage == _LINGER
        gx = np.where(leaving, tracks["ex"][index], tracks["tx"][index]) + lingering * rng.normal(0, 0.03, len(index))
        gy = np.where(leaving, tracks["ey"][index], tracks["ty"][index]) + lingering * rng.normal(0, 0.03, len(index))
        dx, dy = gx - tracks["x"][index], gy - tracks["y"][index]
        distance = np.sqrt(dx * dx + dy * dy)
        speed = tracks["speed"][index]
        arrived = distance <= speed * _TICK_S
        scale = np.minimum(speed, distance / _TICK_S) / np.maximum(distance, 1e-9)
        step[index, 0], step[index, 1] = dx * scale, dy * scale
        inside = arrived & (stage == _APPROACH)
        if inside.any():
            where = index[inside]
            tracks["stage"][where] = _LINGER
            tracks["until"][where] = t + tracks["linger"][where] * 1000.0
            tracks["speed"][where] = rng.uniform(0.004, 0.012, len(where))
        out = lingering & (t >= tracks["until"][index])
        if out.any():
            where = index[out]
            tracks["stage"][where] = _LEAVE
            tracks["speed"][where] = rng.uniform(0.04, 0.08, len(where))
        return arrived & leaving

    def _detect(self, t: int) -> None:
        tracks, rng = self.tracks, self.rng
        n = len(tracks)
        if not n:
            return
        seen = (rng.random(n) < tracks.floats[:, _PDET]).nonzero()[0]
        k = len(seen)
        if not k:
            return
        floats, ints = tracks.floats[seen], tracks.ints[seen]
        u = rng.random((3, k))
        z = rng.standard_normal((3, k))
        rows = np.empty((5, k), np.int64)  # arrival, ts, camera, track, label
        rows[1] = t + (floats[:, _PHASE] + 15.0 * u[0]).astype(np.int64)
        # Most rows arrive within tens of ms; a tenth are held up, never past the disorder bound.
        rows[0] = rows[1] + (u[2] * np.where(u[1] < 0.1, self.max_delay_ms, self.usual_delay_ms)).astype(np.int64)
        rows[2:] = ints[:, _CAM_TID_LABEL].T
        values = np.empty((3, k))  # confidence, x, y
        values[0] = np.minimum(np.maximum(floats[:, _CONF] + z[0] * floats[:, _CONF_SD], 0.01), 0.99)
        jitter = np.minimum(np.maximum(z[1:] * floats[:, _NOISE], -_POSITION_NOISE_CAP), _POSITION_NOISE_CAP)
        values[1:] = np.minimum(np.maximum(floats[:, _XY].T + jitter, 0.0), 0.999999)
        self.pending.append((rows, values))

    def _emit(self, dropped_before: int | None, t_to: int) -> pa.RecordBatch:
        """The pending rows that arrived before ``t_to``, in order of arrival."""
        if len(self.pending) == 1:
            rows, values = self.pending[0]
        elif self.pending:
            rows = np.concatenate([p[0] for p in self.pending], axis=1)
            values = np.concatenate([p[1] for p in self.pending], axis=1)
        else:
            rows, values = np.zeros((5, 0), np.int64), np.zeros((3, 0))
        if dropped_before is not None:  # skipped ahead: what should have arrived in the gap is lost
            fresh = rows[0] >= dropped_before
            rows, values = rows[:, fresh], values[:, fresh]
        ready = rows[0] < t_to
        if np.count_nonzero(ready) == len(ready):
            self.pending = []
        else:
            self.pending = [(rows[:, ~ready], values[:, ~ready])]
            rows, values = rows[:, ready], values[:, ready]
        order = np.argsort(rows[0], kind="stable")
        return self._batch(rows.take(order, axis=1), values.take(order, axis=1))  # C order: rows are columns

    def _batch(self, rows: np.ndarray, values: np.ndarray) -> pa.RecordBatch:
        _, ts, cam, tid, label = rows
        conf, x, y = values
        # The zone slot and the label give the strings of a row; one take fetches them all.
        key = self.zone_slots.lookup(cam, x, y) * len(LABELS) + label
        strings = self.strings.take(pa.Array.from_buffers(pa.int64(), len(key), [None, pa.py_buffer(key)]))
        lat, lon = self.geo_base.take(cam, axis=1) + self.geo_x.take(cam, axis=1) * x + self.geo_y.take(cam, axis=1) * y
        k = len(ts)

        def column(data_type: pa.DataType, values: np.ndarray) -> pa.Array:  # zero copy
            return pa.Array.from_buffers(data_type, k, [None, pa.py_buffer(values)])

        columns = [
            column(_TIME, ts),
            strings.column(0),
            strings.column(1),
            column(pa.int64(), tid),
            strings.column(4),
            column(pa.float64(), conf),
            column(pa.float64(), x),
            column(pa.float64(), y),
            column(pa.float64(), lat),
            column(pa.float64(), lon),
            strings.column(2),
            strings.column(3),
            column(_TIME, np.full(k, _wall_ms(), np.int64)),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=DETECTION)


# ---- weather -------------------------------------------------------------------------------

_REGIONAL_STREAM = 2**31 - 1  # seeds the weather the whole city shares (stations use their index)
_DUST_LAG_S_PER_DEG = 2000.0  # yellow dust comes from the west: eastern stations see it later


def _relax(value: float, mean: float, sd: float, tau_s: float, dt_s: float, rng: np.random.Generator) -> float:
    """One step of a mean-reverting (Ornstein-Uhlenbeck) process, exact for any ``dt_s``."""
    decay = math.exp(-dt_s / tau_s)
    return mean + (value - mean) * decay + sd * math.sqrt(1.0 - decay * decay) * float(rng.standard_normal())


def _diurnal(hour: float, low: float, high: float) -> float:
    """Temperature by hour: lowest at 5 am, highest at 3 pm, smooth in between."""
    if 5.0 <= hour < 15.0:
        return low + (high - low) * (1 - math.cos(math.pi * (hour - 5.0) / 10.0)) / 2
    return high - (high - low) * (1 - math.cos(math.pi * ((hour - 15.0) % 24.0) / 14.0)) / 2


def _sun(hour: float) -> float:
    """Clear-sky share of the noon radiation (sunrise about 5:25, sunset about 19:35 in May)."""
    if not 5.4 < hour < 19.6:
        return 0.0
    return math.sin(math.pi * (hour - 5.4) / 14.2) ** 1.2


class WeatherFeed(_PacedFeed):
    """Readings of the city's weather stations: one partition per station, one reading per
    ``simulation.reading_interval_s`` of event time.

    Diurnal temperature (Korean time), humidity opposite to it, solar radiation by the sun and
    the clouds, wind as a random walk with gusts and shifts, rain spells, visibility that drops
    in rain and dust, pressure drifting around 1013 hPa, and yellow-dust episodes raising PM10 to
    150-450. Rain spells and dust episodes are regional (shared by all stations, dust reaching
    eastern stations a few minutes later); by default the first dust episode starts within the
    first minutes, so that a short run shows one. Replays are the same for the same city, seed
    and duration; live feeds read when the wall clock reaches a reading's time.

    Example:
        >>> from actors.topology import load_city
        >>> feed = WeatherFeed(load_city(), duration_s=30.0)
        >>> feed.open(0, 4)
        >>> feed.poll().column("station").to_pylist()
        ['aws-songdo-1']
    """

    _unit = "weather station"
    _due_at_end = False

    def __init__(
        self,
        city: City,
        mode: Mode = "replay",
        duration_s: float | None = None,
        seed: int | None = None,
        *,
        rain_spells_per_hour: float = 0.15,
        rain_spell_mean_h: float = 1.0,
        dust_episodes_per_hour: float = 0.04,
        wind_shifts_per_hour: float = 0.5,
        dust_episode_at_start: bool = True,
    ) -> None:
        """Rates are per hour of dry weather (rain), of time (dust, for the whole city) and per
        station (wind shifts); 0 turns them off. ``dust_episode_at_start`` starts a yellow-dust
        episode in the first minutes of the feed (replay or live), so that demos and tests see
        one; the later ones come at ``dust_episodes_per_hour``."""
        super().__init__(city, mode, duration_s, seed)
        for name, value in (
            ("rain_spells_per_hour", rain_spells_per_hour),
            ("dust_episodes_per_hour", dust_episodes_per_hour),
            ("wind_shifts_per_hour", wind_shifts_per_hour),
        ):
            if isinstance(value, bool) or not value >= 0 or math.isinf(value):
                raise OptionError(name, value, "a finite rate >= 0 per hour")
        if isinstance(rain_spell_mean_h, bool) or not 0 < rain_spell_mean_h < math.inf:
            raise OptionError("rain_spell_mean_h", rain_spell_mean_h, "a finite number of hours > 0")
        self.schema = WEATHER
        self.rain_spells_per_hour = float(rain_spells_per_hour)
        self.rain_spell_mean_h = float(rain_spell_mean_h)
        self.dust_episodes_per_hour = float(dust_episodes_per_hour)
        self.wind_shifts_per_hour = float(wind_shifts_per_hour)
        self.dust_episode_at_start = dust_episode_at_start
        self._station: _Station | None = None

    def _partitions(self) -> int:
        return len(self.city.stations)

    def _period_ms(self) -> int:
        return max(1, round(self.city.simulation.reading_interval_s * 1000))

    def _open_partition(self, partition: int) -> None:
        # Live stations open within moments of each other: their shared weather, drawn from the
        # same seed from their opening on, differs by those moments only.
        self._station = _Station(self, partition, self._start_ms)

    def _build(self, t_from: int, t_to: int, skipped: bool) -> pa.RecordBatch:
        assert self._station is not None, "open() the source first"
        return self._station.reading(t_from)

    def _simulation_state(self) -> dict[str, Any]:
        if self._station is None:
            raise StateError("WeatherFeed: open() the source before taking a snapshot")
        return self._station.state()

    def _restore_simulation(self, state: dict[str, Any]) -> None:
        if self._station is None:
            raise StateError("WeatherFeed: open() the source before restoring it")
        self._station.set_state(state)

    def close(self) -> None:
        self._station = None


class _RegionalWeather:
    """Weather the stations share: the day's temperature offset, pressure systems, rain spells
    and dust episodes, drawn lazily as time goes on, identical in every station's copy."""

    def __init__(self, feed: WeatherFeed, anchor_ms: int) -> None:
        misc = np.random.default_rng([feed.seed, _REGIONAL_STREAM, 0])
        self.day_offset = float(np.clip(misc.normal(0.0, 1.0), -1.5, 1.5))
        self.pressure_base = float(misc.uniform(1008.0, 1018.0))
        self.pressure_waves = [
            (float(misc.uniform(2.0, 5.0)), float(misc.uniform(24.0, 72.0)) * 3_600_000, float(misc.uniform(0, 2 * math.pi))),
            (float(misc.uniform(0.5, 1.5)), float(misc.uniform(4.0, 10.0)) * 3_600_000, float(misc.uniform(0, 2 * math.pi))),
        ]
        self.rain_rng = np.random.default_rng([feed.seed, _REGIONAL_STREAM, 1])
        self.dust_rng = np.random.default_rng([feed.seed, _REGIONAL_STREAM, 2])
        self.dry_mean_ms = 3_600_000 / feed.rain_spells_per_hour if feed.rain_spells_per_hour > 0 else math.inf
        self.wet_mean_ms = feed.rain_spell_mean_h * 3_600_000
        self.dust_gap_ms = 3_600_000 / feed.dust_episodes_per_hour if feed.dust_episodes_per_hour > 0 else math.inf
        self.spells: list[tuple[float, float, float]] = []  # start, end, mm/h
        self.next_spell = anchor_ms + self._draw(self.rain_rng, self.dry_mean_ms)
        self.episodes: list[tuple[float, float, float, float, float]] = []  # onset, rise, length, fall (ms), peak
        if feed.dust_episode_at_start:
            rng = self.dust_rng
            length = rng.uniform(40.0, 150.0) * 60_000
            self.episodes.append(
                (
                    anchor_ms + rng.uniform(20.0, 90.0) * 1000,
                    rng.uniform(4.0, 7.0) * 60_000,
                    length,
                    0.3 * length,
                    rng.uniform(230.0, 450.0),
                )
            )
            self.next_episode = self.episodes[0][0] + length + self._draw(rng, self.dust_gap_ms)
        else:
            self.next_episode = anchor_ms + self._draw(self.dust_rng, self.dust_gap_ms)

    def state(self) -> dict[str, Any]:
        """What changes as time goes on: the generators, the spells and episodes drawn so far
        and when the next ones come (the pressure systems and means follow from the seed)."""
        return {
            "rain_rng": self.rain_rng.bit_generator.state,
            "dust_rng": self.dust_rng.bit_generator.state,
            "spells": [list(spell) for spell in self.spells],
            "next_spell": float(self.next_spell),
            "episodes": [list(episode) for episode in self.episodes],
            "next_episode": float(self.next_episode),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.rain_rng.bit_generator.state = state["rain_rng"]
        self.dust_rng.bit_generator.state = state["dust_rng"]
        self.spells = [(float(s[0]), float(s[1]), float(s[2])) for s in state["spells"]]
        self.next_spell = float(state["next_spell"])
        self.episodes = [(float(e[0]), float(e[1]), float(e[2]), float(e[3]), float(e[4])) for e in state["episodes"]]
        self.next_episode = float(state["next_episode"])

    @staticmethod
    def _draw(rng: np.random.Generator, mean: float) -> float:
        return math.inf if math.isinf(mean) else float(rng.exponential(mean))

    def pressure(self, t_ms: int) -> float:
        hour = _kst_hour(t_ms)
        waves = sum(a * math.sin(2 * math.pi * t_ms / period + phase) for a, period, phase in self.pressure_waves)
        return self.pressure_base + waves + 0.8 * math.sin(4 * math.pi * (hour - 4.0) / 24.0)  # twice-daily tide

    def rain(self, t_ms: int) -> float:
        """Rain intensity (mm/h) of the spell going on, 0 when dry."""
        while self.next_spell <= t_ms:
            length = max(600_000.0, float(self.rain_rng.exponential(self.wet_mean_ms)))
            intensity = float(np.clip(self.rain_rng.lognormal(math.log(3.0), 0.6), 1.0, 12.0))
            self.spells.append((self.next_spell, self.next_spell + length, intensity))
            self.next_spell += length + self._draw(self.rain_rng, self.dry_mean_ms)
        self.spells = [spell for spell in self.spells if spell[1] > t_ms]
        return next((mm for start, end, mm in self.spells if start <= t_ms < end), 0.0)

    def dust(self, t_ms: float) -> tuple[float, float]:
        """(envelope 0..1, peak PM10) of the dust episode over the city at this time."""
        while self.next_episode <= t_ms:
            rng = self.dust_rng
            length = math.exp(rng.uniform(math.log(30.0), math.log(240.0))) * 60_000
            rise = min(max(0.15 * length, 5 * 60_000), 40 * 60_000)
            fall = min(max(0.3 * length, 10 * 60_000), 60 * 60_000, length - rise)
            self.episodes.append((self.next_episode, rise, length, fall, rng.uniform(150.0, 450.0)))
            self.next_episode += length + self._draw(rng, self.dust_gap_ms)
        self.episodes = [e for e in self.episodes if e[0] + e[2] > t_ms]
        best = (0.0, 0.0)
        for onset, rise, length, fall, peak in self.episodes:
            into = t_ms - onset
            if 0 <= into < length:
                if into < rise:
                    level = (1 - math.cos(math.pi * into / rise)) / 2
                elif into > length - fall:
                    level = (1 - math.cos(math.pi * (length - into) / fall)) / 2
                else:
                    level = 1.0
                best = max(best, (level * peak, peak))
        return (best[0] / best[1], best[1]) if best[1] else best


class _Station:
    """One weather station: its own character and noise over the regional weather."""

    # What a reading changes. The station's character (its temperatures, offsets, factors and
    # means, but the wind's mean, which shifts) is drawn first from its seed: the same at every opening.
    _CHANGING: ClassVar[tuple[str, ...]] = (
        "temperature_noise",
        "humidity_noise",
        "cloud",
        "pm_noise",
        "rain_noise",
        "visibility",
        "wind",
        "wind_mean",
        "wind_direction",
        "wet",
    )

    def __init__(self, feed: WeatherFeed, partition: int, anchor_ms: int) -> None:
        city = feed.city
        station = city.stations[partition]
        self.station = pa.array([station.id], pa.string())
        self.district = pa.array([station.district], pa.string())
        self.regional = _RegionalWeather(feed, anchor_ms)
        rng = self.rng = np.random.default_rng([feed.seed, partition])
        self.dust_lag_ms = (station.lon - min(s.lon for s in city.stations)) * _DUST_LAG_S_PER_DEG * 1000
        self.shift_rate_per_s = feed.wind_shifts_per_hour / 3600.0
        # A spring day in Incheon: about 8-11 C at dawn, 19-23 C in the afternoon.
        self.low = 9.5 + self.regional.day_offset + float(rng.normal(0.0, 0.3))
        self.high = 21.0 + self.regional.day_offset + float(rng.normal(0.0, 0.4))
        self.pressure_offset = float(rng.normal(0.0, 0.4))
        self.pm_base = float(rng.uniform(30.0, 48.0))
        self.pm_factor = float(rng.uniform(0.88, 1.1))
        self.rain_factor = float(rng.uniform(0.8, 1.2))
        self.wind_mean = float(rng.uniform(2.5, 5.0))
        self.visibility_mean = float(rng.uniform(15_000.0, 19_000.0))
        # Fluctuations, started from their long-run spread.
        self.temperature_noise = float(rng.normal(0.0, 0.4))
        self.humidity_noise = float(rng.normal(0.0, 3.0))
        self.cloud = float(rng.normal(0.0, 0.1))
        self.pm_noise = float(rng.normal(0.0, 0.2))
        self.rain_noise = 0.0
        self.visibility = self.visibility_mean
        self.wind = self.wind_mean + float(rng.normal(0.0, 1.0))
        self.wind_direction = float(rng.uniform(0.0, 360.0))
        self.wet = 0.0  # 0 dry .. 1 soaked: rain's effects build up and fade slowly
        self.last_ms: int | None = None

    def state(self) -> dict[str, Any]:
        """The generator, the fluctuations and the last reading's time, and the regional weather."""
        state: dict[str, Any] = {name: float(getattr(self, name)) for name in self._CHANGING}
        state.update(rng=self.rng.bit_generator.state, last_ms=self.last_ms, regional=self.regional.state())
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        for name in self._CHANGING:
            setattr(self, name, float(state[name]))
        self.rng.bit_generator.state = state["rng"]
        self.last_ms = None if state["last_ms"] is None else int(state["last_ms"])
        self.regional.set_state(state["regional"])

    def reading(self, t_ms: int) -> pa.RecordBatch:
        rng, regional = self.rng, self.regional
        dt = 0.0 if self.last_ms is None else (t_ms - self.last_ms) / 1000.0
        self.last_ms = t_ms
        hour = _kst_hour(t_ms)
        rain = regional.rain(t_ms)
        target = 1.0 if rain else 0.0
        self.wet = target + (self.wet - target) * math.exp(-dt / (600.0 if rain else 2400.0))
        dust, peak = regional.dust(t_ms - self.dust_lag_ms)

        self.temperature_noise = _relax(self.temperature_noise, 0.0, 0.4, 1800.0, dt, rng)
        base = _diurnal(hour, self.low, self.high)
        temperature = base + self.temperature_noise - 3.0 * self.wet
        warmth = (base - self.low) / max(self.high - self.low, 1.0)
        self.humidity_noise = _relax(self.humidity_noise, 0.0, 3.0, 900.0, dt, rng)
        humidity = (92.0 - 55.0 * warmth) * (1 - self.wet) + 95.0 * self.wet + self.humidity_noise - 12.0 * dust

        self.cloud = _relax(self.cloud, 0.0, 0.1, 1200.0, dt, rng)
        solar = 850.0 * _sun(hour) * min(1.0, max(0.4, 0.88 + self.cloud)) * (1 - 0.75 * self.wet) * (1 - 0.3 * dust)

        if rng.random() < -math.expm1(-self.shift_rate_per_s * dt):  # the wind shifts
            self.wind_mean = float(rng.uniform(1.5, 7.5))
            self.wind_direction += float(rng.choice([-1.0, 1.0]) * rng.uniform(40.0, 120.0))
        self.wind = _relax(self.wind, self.wind_mean + 2.0 * self.wet, 1.3, 600.0, dt, rng)
        gust = float(rng.uniform(2.0, 6.0)) if rng.random() < -math.expm1(-dt / 250.0) else 0.0
        self.wind_direction = (self.wind_direction + float(rng.normal(0.0, 3.0)) * math.sqrt(dt / 10.0)) % 360.0

        self.rain_noise = _relax(self.rain_noise, 0.0, 0.3, 600.0, dt, rng)
        precipitation = min(12.0, max(1.0, rain * self.rain_factor * math.exp(self.rain_noise))) if rain else 0.0

        self.pm_noise = _relax(self.pm_noise, 0.0, 0.2, 3600.0, dt, rng)
        clean = self.pm_base * math.exp(self.pm_noise) * (1 - 0.5 * self.wet)
        pm10 = clean + max(0.0, peak * self.pm_factor - clean) * dust * math.exp(float(rng.normal(0.0, 0.04)))

        self.visibility = _relax(self.visibility, self.visibility_mean, 2000.0, 1800.0, dt, rng)
        clear = min(20_000.0, max(10_000.0, self.visibility))
        visibility = min(clear * math.exp(-0.35 * precipitation), 1.5e6 / pm10)
        pressure = regional.pressure(t_ms) + self.pressure_offset - 2.5 * self.wet + float(rng.normal(0.0, 0.1))

        values = {
            "temperature": round(temperature, 1),
            "humidity": round(min(97.0, max(30.0, humidity)), 1),
            "wind_speed": round(min(15.0, max(0.0, self.wind + gust)), 1),
            "wind_direction": round(self.wind_direction) % 360.0,
            "solar_radiation": round(solar, 1),
            "pm10": round(min(999.0, max(5.0, pm10)), 1),
            "pressure": round(pressure, 1),
            "precipitation": round(precipitation, 1),
            "visibility": round(min(20_000.0, max(100.0, visibility)), -1),
        }
        columns = [pa.array([t_ms], WEATHER.field("ts").type), self.station, self.district]
        columns += [pa.array([values[f.name]], pa.float64()) for f in list(WEATHER)[3:]]
        return pa.RecordBatch.from_arrays(columns, schema=WEATHER)


# ---- replays -------------------------------------------------------------------------------


def replay_tables(city: City, duration_s: float, seed: int | None = None) -> tuple[pa.Table, pa.Table]:
    """All detections and all weather readings of a replay of ``duration_s`` seconds of event
    time, every partition polled to its end in turn: partition after partition, each in the
    order its batches came.

    Example:
        >>> from actors.topology import load_city
        >>> detections, readings = replay_tables(load_city(), 20.0)
        >>> readings.num_rows  # 4 stations, one reading every 10 s
        8
    """
    if duration_s is None or isinstance(duration_s, bool) or not 0 <= duration_s < math.inf:
        raise OptionError("duration_s", duration_s, "a finite number of seconds >= 0")
    feeds: list[_PacedFeed] = [CameraFeed(city, "replay", duration_s, seed), WeatherFeed(city, "replay", duration_s, seed)]
    tables = []
    for feed in feeds:
        partitions = feed._partitions()
        batches = []
        for partition in range(partitions):
            task = copy.copy(feed)
            task.open(partition, partitions)
            try:
                while not isinstance(batch := task.poll(), EndOfInput):
                    if batch is not None:
                        batches.append(batch)
            finally:
                task.close()
        tables.append(pa.Table.from_batches(batches, schema=feed.schema).combine_chunks())  # one chunk: fast to compute on
    return tables[0], tables[1]
