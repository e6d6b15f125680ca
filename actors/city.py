"""The main job: camera and weather-station actors feed the district actors, which fuse each
detection with its district's weather and raise incidents, routed to the police gateways."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from actors.district import DistrictFusion
from actors.gateway import PoliceGateway
from actors.schemas import INCIDENT, LABELS, TIME
from actors.topology import City
from engine import CitystreamError, Dataflow, Source, Stream
from engine.checkpoint import CheckpointOptions
from engine.expr import Expr, col, fn
from engine.operator import LATE

FUTURE_MS = 60_000  # a row stamped further ahead than this of the clock is refused


def detection_checks(city: City, clock_check: bool = True) -> dict[str, Expr]:
    """Why a detection is refused (dead letter), in the order checked. ``clock_check``: refuse
    rows stamped far ahead of the wall clock (off for replays, whose time is simulated)."""
    cameras = {c.id: c.district for c in city.cameras}
    checks = {
        "unknown camera": col("camera").isin(list(cameras)),
        "district is not the camera's": fn(_district_of(cameras, "camera"), ["camera", "district"]),
        "unknown label": col("label").isin(list(LABELS)),
        "confidence outside [0, 1] or NaN": col("confidence").between(0.0, 1.0),
        "frame position outside [0, 1] or NaN": col("frame_x").between(0.0, 1.0) & col("frame_y").between(0.0, 1.0),
    }
    if clock_check:
        checks["time too far in the future"] = fn(_not_in_future, ["ts"])
    return checks


def reading_checks(city: City, clock_check: bool = True) -> dict[str, Expr]:
    """Why a weather reading is refused (dead letter), in the order checked."""
    stations = {s.id: s.district for s in city.stations}
    checks = {
        "unknown station": col("station").isin(list(stations)),
        "district is not the station's": fn(_district_of(stations, "station"), ["station", "district"]),
        "temperature outside [-40, 50] C or NaN": col("temperature").between(-40.0, 50.0),
        "humidity outside [0, 100] % or NaN": col("humidity").between(0.0, 100.0),
        "wind outside [0, 80] m/s or NaN": col("wind_speed").between(0.0, 80.0) & col("wind_direction").between(0.0, 360.0),
        "pm10 outside [0, 5000] or NaN": col("pm10").between(0.0, 5000.0),
        "precipitation or visibility negative or NaN": (col("precipitation") >= 0.0) & (col("visibility") >= 0.0),
    }
    if clock_check:
        checks["time too far in the future"] = fn(_not_in_future, ["ts"])
    return checks


class _district_of:
    """Checks that each row's district is the one its camera (or station) belongs to."""

    def __init__(self, owners: dict[str, str], column: str) -> None:
        self.names = pa.array(list(owners), pa.string())
        self.districts = pa.array(list(owners.values()), pa.string())
        self.column = column

    def __call__(self, batch: pa.RecordBatch) -> pa.Array:
        positions = pc.index_in(batch.column(self.column), value_set=self.names)
        expected = pc.take(self.districts, positions)
        return pc.fill_null(pc.equal(expected, batch.column("district")), False)


def _not_in_future(batch: pa.RecordBatch) -> pa.Array:
    limit = pa.scalar(int(time.time() * 1000) + FUTURE_MS, pa.int64()).cast(TIME)
    return pc.less_equal(pc.cast(batch.column("ts"), TIME), limit)


def checkpoint_options(city: City, *, interval_s: float | None = None, restore: bool = False) -> CheckpointOptions | None:
    """The city job's checkpoint options from its config (``interval_s`` overrides the
    config's); None when checkpoints are off (an interval of 0)."""
    config = city.checkpoints
    interval = config.interval_s if interval_s is None else interval_s
    if interval <= 0:
        if restore:
            raise CitystreamError("restoring needs checkpoints: set [checkpoints] interval_s above 0")
        return None
    return CheckpointOptions(
        config.directory,
        interval_s=interval,
        keep=config.keep,
        timeout_s=config.timeout_s,
        max_restarts=config.max_restarts,
        restore=restore,
    )


def source_districts(city: City) -> dict[str, list[int | None]]:
    """For the simulated feeds of ``city_flow``: the district task (index of the district) each
    camera task (one per camera group) and station task (one per station) feeds; None for a
    camera group that spans districts."""
    index = {d: i for i, d in enumerate(city.district_ids())}
    cameras: list[int | None] = []
    for group in city.camera_groups():
        districts = {c.district for c in group}
        cameras.append(index[districts.pop()] if len(districts) == 1 else None)
    stations: list[int | None] = [index[s.district] for s in city.stations]
    return {"cameras": cameras, "stations": stations}


def city_flow(
    city: City,
    *,
    cameras: Source | None = None,
    stations: Source | None = None,
    mode: Literal["replay", "live"] = "replay",
    duration_s: float | None = None,
    seed: int | None = None,
    name: str = "city",
    serve: bool = True,
    camera_tasks: int | None = None,
    station_tasks: int | None = None,
    screen: bool = True,
    screen_key: str = "",
) -> Dataflow:
    """The whole graph. Without ``cameras``/``stations`` the simulated feeds of the topology
    run (one camera actor per camera group, one per station); tests pass table sources.
    ``serve``: the gateways log their incidents and serve them over gRPC (off: they only keep them).
    ``camera_tasks``, ``station_tasks``: parallelism of sources passed in (default 1; the
    simulated feeds run one task per camera group and per station). ``screen``: the
    operations-center screen and the residents' pages (``actors.web``), fed by the incidents,
    the readings and the incidents' counts over ``[screen] counts_window_s``; ``screen_key``:
    what the driver posts the pipeline's health with."""
    simulated_time = mode == "replay" and cameras is None and stations is None
    camera_tasks = len(city.camera_groups()) if cameras is None else camera_tasks or 1
    station_tasks = len(city.stations) if stations is None else station_tasks or 1
    if cameras is None or stations is None:
        from actors.simulation import CameraFeed, WeatherFeed

        cameras = cameras or CameraFeed(city, mode, duration_s, seed)
        stations = stations or WeatherFeed(city, mode, duration_s, seed)
    out_of_orderness = city.simulation.out_of_orderness_ms
    # Live, a station speaks every reading_interval_s: waiting for its watermark would hold
    # every detection back that long. An input silent for a second stops holding the district's
    # watermark (detections then join the latest reading known). Replays wait, so that a run
    # gives the same incidents whatever the speed of each actor.
    idle_timeout = timedelta(seconds=1) if mode == "live" else None
    flow = Dataflow(name, parallelism=len(city.districts), idle_timeout=idle_timeout)
    detections = flow.source(
        "cameras", cameras, "ts", out_of_orderness, validate=detection_checks(city, not simulated_time), parallelism=camera_tasks
    )
    readings = flow.source(
        "stations", stations, "ts", out_of_orderness, validate=reading_checks(city, not simulated_time), parallelism=station_tasks
    )
    refused: tuple[list[Stream], list[Stream]] = [detections.dead_letter()], [readings.dead_letter()]
    if mode == "live" and city.dispatch.ingest_port >= 0:
        # Edge devices push into the same streams; an idle device does not hold time back
        # (the idle timeout of live runs).
        from actors.ingest import IngestFeed

        port = city.dispatch.ingest_port
        pushed = flow.source(
            "ingest_detections",
            IngestFeed("detections", city.dispatch.host, port, city.dispatch.log_dir),
            "ts",
            out_of_orderness,
            validate=detection_checks(city),
            parallelism=1,
        )
        pushed_readings = flow.source(
            "ingest_readings",
            IngestFeed("readings", city.dispatch.host, port + 1 if port else 0, city.dispatch.log_dir),
            "ts",
            out_of_orderness,
            validate=reading_checks(city),
            parallelism=1,
        )
        refused[0].append(pushed.dead_letter())
        refused[1].append(pushed_readings.dead_letter())
        extra_inputs = [pushed, pushed_readings]
    else:
        extra_inputs = []
    # One district actor per district: pinned, not hashed (a hash could put two on one task).
    placement = {district: i for i, district in enumerate(city.district_ids())}
    incidents = detections.key_by("district", placement=placement).process(
        lambda: DistrictFusion(city),
        INCIDENT,
        "districts",
        # Inputs: 0 detections, 1 readings (then pushed detections, pushed readings: even
        # inputs are detections, odd ones readings).
        others=[s.key_by("district", placement=placement) for s in [readings, *extra_inputs]],
        event_time="trigger_time",
        side_outputs={LATE: (detections.schema, "ts")},
    )
    gateways = {gateway.id: i for i, gateway in enumerate(city.gateways)}
    incidents.key_by("gateway", placement=gateways).sink_each(lambda: PoliceGateway(city, serve), "gateways", len(gateways))
    if screen:
        _screen(flow, city, incidents, readings, serve, screen_key)
    # Few rows, if any: one actor each.
    incidents.late().collect("late_detections", parallelism=1)
    for name, streams in zip(("refused_detections", "refused_readings"), refused, strict=True):
        first, *others = streams
        (first.union(*others, name=f"{name}_all").with_parallelism(1) if others else first).collect(name, parallelism=1)
    return flow


def _screen(flow: Dataflow, city: City, incidents: Stream, readings: Stream, serve: bool, key: str) -> None:
    """One screen task (``actors.web.screen.Screen``) fed by the incidents (input 0), the
    readings (1) and the incidents' counts of a tumbling window by district and kind (2)."""
    from actors.web.screen import SCREEN_OUTPUT, Screen
    from operators import Tumbling, agg

    window = Tumbling(timedelta(seconds=city.screen.counts_window_s))
    counts = incidents.key_by("district", "kind").window(window, [agg("count")], name="incident_counts").with_parallelism(1)
    # It emits nothing: a sink of three inputs (its output schema is only declared).
    incidents.process(lambda: Screen(city, serve, key), SCREEN_OUTPUT, "screen", others=[readings, counts], event_time="ts")
