"""The district actor's operator: detections fused with the latest weather of their district
(as-of join), then the incident rules, each a filter and a window; weather readings also feed
the yellow-dust advisory. One ``DistrictFusion`` runs per district task.

Rules (thresholds from the config's ``[rules]``; weather moves the severity):

- intrusion: a person in a restricted zone; one incident per track and zone per window;
  severity 3, 4 at night (22:00-05:59 KST).
- loitering: a person track seen for longer than ``loitering_min_s`` (a session window per
  track, closed after ``loitering_gap_s`` unseen); severity 2, +1 in a restricted zone.
- crowd: distinct person tracks per camera in a tumbling window at or over the threshold;
  severity 2, 3 at twice the threshold, +1 in yellow dust (PM10 over the second level).
- fire: fire or smoke detections per camera in a window; severity 3 (smoke) or 4 (fire), +1
  in strong wind, +1 in dry air; in strong wind the downwind neighbour district is warned
  with an incident of its own (severity one lower).
- road: collisions on a road zone; severity 3, +1 in heavy rain, +1 in poor visibility.
- yellow_dust: mean PM10 of a district's readings per window over the configured levels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.schemas import DETECTION, INCIDENT, TIME, WEATHER, WEATHER_CONTEXT
from actors.topology import City
from engine.expr import Expr, col, lit
from engine.operator import LATE, MAIN, Collector, Operator
from engine.timeutil import MAX_WATERMARK, MIN_WATERMARK
from operators import Session, Tumbling, agg
from operators.join.asof import AsofJoin
from operators.window import build_window
from operators.window.aggregates import Agg

KST_OFFSET_MS = 9 * 3_600_000
WATERMARK_STEP_MS = 100  # event time between two watermarks applied without a window ending
WEATHER_PREFIX = "weather_"


def fused_schema() -> pa.Schema:
    """A detection with the reading of its district's weather (columns prefixed weather_)."""
    return pa.schema(list(DETECTION) + [pa.field(WEATHER_PREFIX + f.name, f.type) for f in WEATHER if f.name != "district"])


@dataclass
class _Rule:
    kind: str
    predicate: Expr
    keys: list[str]
    window: Operator
    to_incidents: Callable[[pa.RecordBatch], pa.Table | None]
    collector: Collector | None = None
    # The predicate as (the shared subset it is within, what it adds on the subset's rows,
    # None for nothing): person rules share one filter of the fused batch.
    within: Expr | None = None
    residual: Expr | None = None


class DistrictFusion(Operator):
    """Input 0: detections, input 1: weather readings, both keyed by district (and inputs
    2, 3, ... alternately more of each, such as pushed by devices). Output:
    incidents (schema ``INCIDENT``); ``late``: detections that came after their window."""

    # Incidents go to the gateways as soon as a rule raises them, not after the other rules.
    urgent_outputs = frozenset({MAIN})

    def __init__(self, city: City) -> None:
        self.city = city
        self.rules_config = city.rules
        schema = fused_schema()
        self.schema = schema
        pairs = [(f.name, WEATHER_PREFIX + f.name) for f in WEATHER if f.name != "district"]
        tolerance = int(city.rules.weather_tolerance_s * 1000)
        self.join = AsofJoin(["district"], ["district"], "ts", "ts", tolerance, pairs, WEATHER, schema)
        self.rules = self._rules(schema)
        dust_aggregates = [
            agg("mean", "pm10"),
            agg("max", "pm10"),
            agg("max", "ts", name="trigger_time"),
            agg("count", name="readings"),
            *[agg("last", name, name=name) for name in WEATHER_CONTEXT],
        ]
        dust_window = Tumbling(timedelta(seconds=city.rules.dust_window_s))
        self.dust = self._window("dust", dust_window, ["district"], dust_aggregates, WEATHER)
        self.neighbours = {d.id: d.neighbours for d in city.districts}
        # Episode (incident id without its window) -> end of the window that last raised it.
        self.raised: dict[str, int] = {}
        self.repeat_after_ms = int(city.rules.repeat_after_s * 1000)
        # Watermarks are applied at firing points only (see on_watermark): the ends of the
        # tumbling windows, and at least every WATERMARK_STEP_MS of event time.
        r = city.rules
        self._tumbling_ms = sorted(
            {round(s * 1000) for s in (r.intrusion_window_s, r.crowd_window_s, r.fire_window_s, r.road_window_s, r.dust_window_s)}
        )
        self._next_firing = MIN_WATERMARK
        self._out: Collector | None = None
        self._join_out = Collector({MAIN: self._fused, LATE: self._late})
        self._dust_out = Collector({MAIN: lambda b: self._emit(self._dust_incidents(b)), LATE: lambda b: None})
        for rule in self.rules:
            rule.collector = Collector({MAIN: self._emitter(rule), LATE: self._late_fused})

    # ---- wiring ---------------------------------------------------------------------------

    def _window(self, name: str, spec: object, keys: list[str], aggregates: list[Agg], schema: pa.Schema) -> Operator:
        factory, _ = build_window(name, spec, keys, aggregates, schema, "ts")
        return factory()

    def _rules(self, schema: pa.Schema) -> list[_Rule]:
        r = self.rules_config
        context = [agg("last", WEATHER_PREFIX + name, name=WEATHER_PREFIX + name) for name in WEATHER_CONTEXT]
        timing = [agg("max", "ts", name="trigger_time"), agg("max", "ingest_time", name="ingest_time")]
        person = col("label") == lit("person")

        def rule(
            kind: str,
            predicate: Expr,
            spec: object,
            keys: list[str],
            aggregates: list[Agg],
            to_incidents,
            within: Expr | None = None,
            residual: Expr | None = None,
        ):
            window = self._window(kind, spec, keys, [*aggregates, *timing, *context], schema)
            return _Rule(kind, predicate, keys, window, to_incidents, within=within, residual=residual)

        intrusion = (col("zone_kind") == lit("restricted")) & (col("confidence") >= lit(r.intrusion_min_confidence))

        return [
            rule(
                "intrusion",
                person & intrusion,
                Tumbling(timedelta(seconds=r.intrusion_window_s)),
                ["district", "camera", "zone", "track_id"],
                [agg("count", name="detections"), agg("max", "confidence")],
                self._intrusions,
                within=person,
                residual=intrusion,
            ),
            rule(
                "loitering",
                person,
                Session(gap=timedelta(seconds=r.loitering_gap_s)),
                ["district", "camera", "track_id"],
                [
                    agg("min", "ts", name="first_seen"),
                    agg("count", name="detections"),
                    agg("count_distinct", "zone_kind", name="zone_kinds"),
                    agg("last", "zone_kind"),
                ],
                self._loiterers,
                within=person,
            ),
            rule(
                "crowd",
                person,
                Tumbling(timedelta(seconds=r.crowd_window_s)),
                ["district", "camera"],
                [agg("count_distinct", "track_id", name="persons"), agg("count", name="detections")],
                self._crowds,
                within=person,
            ),
            rule(
                "fire",
                col("label").isin(["fire", "smoke"]) & (col("confidence") >= lit(r.fire_min_confidence)),
                Tumbling(timedelta(seconds=r.fire_window_s)),
                ["district", "camera"],
                [
                    agg("count", name="detections"),
                    agg("count_distinct", "label", name="labels"),
                    agg("max", "label"),
                    agg("max", "confidence"),
                ],
                self._fires,
            ),
            rule(
                "road",
                (col("label") == lit("collision"))
                & (col("zone_kind") == lit("road"))
                & (col("confidence") >= lit(r.road_min_confidence)),
                Tumbling(timedelta(seconds=r.road_window_s)),
                ["district", "camera"],
                [agg("count", name="detections"), agg("max", "confidence")],
                self._road,
            ),
        ]

    def _emitter(self, rule: _Rule) -> Callable[[pa.RecordBatch], None]:
        return lambda windows: self._emit(rule.to_incidents(windows))

    # ---- the operator contract ------------------------------------------------------------

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        self._out = out
        input_index %= 2  # inputs beyond the first two (pushed by devices) alternate the same way
        self.join.process_batch(batch, input_index, self._join_out)
        if input_index == 1:
            self.dust.process_batch(batch, 0, self._dust_out)

    def on_watermark(self, watermark: int, out: Collector) -> int | None:
        """Applied only once it reaches the next firing point: the end of a tumbling window
        of a rule (or of the dust window), or ``WATERMARK_STEP_MS`` of event time after the
        last one applied (sessions, the join's output). Until then the join keeps the
        detections it holds and the windows get no rows, so that a district fed small frames
        (a low rate, a short linger) does not run the join and every rule on each of them: no
        window can fire in between, and a session closes at most that much event time later."""
        self._out = out
        if watermark < self._next_firing:
            return None
        self._next_firing = self._firing_after(watermark)
        joined = self.join.on_watermark(watermark, self._join_out)
        forwarded: list[int | None] = [joined]
        for rule in self.rules:
            assert rule.collector is not None
            if joined is not None:
                forwarded.append(rule.window.on_watermark(joined, rule.collector))
        forwarded.append(self.dust.on_watermark(watermark, self._dust_out))
        values = [w for w in forwarded if w is not None]
        return min(values) if values else None

    def _firing_after(self, watermark: int) -> int:
        """The next watermark at which something may fire: a window [start, end) fires at
        end - 1 (tumbling windows are aligned to the epoch)."""
        if watermark >= MAX_WATERMARK:
            return MAX_WATERMARK
        ends = [((watermark + 1) // size + 1) * size - 1 for size in self._tumbling_ms if size > 0]
        return min([watermark + WATERMARK_STEP_MS, *ends])

    def snapshot(self) -> dict[str, Any]:
        """``{"join": ..., "rules": {kind: ...}, "dust": ..., "raised": {episode: window end}}``:
        the as-of join's, each rule window's and the dust window's own snapshots, and the
        episodes raised (a copy: the dict changes in place with every incident)."""
        return {
            "join": self.join.snapshot(),
            "rules": {rule.kind: rule.window.snapshot() for rule in self.rules},
            "dust": self.dust.snapshot(),
            "raised": dict(self.raised),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.join.restore(state["join"])
        for rule in self.rules:
            rule.window.restore(state["rules"][rule.kind])
        self.dust.restore(state["dust"])
        self.raised = dict(state["raised"])

    def _fused(self, batch: pa.RecordBatch) -> None:
        # Rules within a shared subset (person) filter the batch once for all of them: a
        # rule's rows are then the subset's rows its residual predicate keeps, in order, as
        # its whole predicate would have kept them from the batch.
        subsets: dict[int, pa.RecordBatch | None] = {}
        for rule in self.rules:
            source = batch
            predicate: Expr | None = rule.predicate
            if rule.within is not None:
                key = id(rule.within)
                if key not in subsets:
                    mask = rule.within.evaluate(batch)
                    subsets[key] = batch.filter(mask) if pc.any(mask).as_py() else None
                subset = subsets[key]
                if subset is None:
                    continue
                source, predicate = subset, rule.residual
            if predicate is None:
                selected = source
            else:
                mask = predicate.evaluate(source)
                if not pc.any(mask).as_py():
                    continue  # most rules match few rows: skip the filter and the window call
                selected = source.filter(mask)
            if selected.num_rows:
                assert rule.collector is not None
                rule.window.process_batch(selected, 0, rule.collector)

    def _late(self, batch: pa.RecordBatch) -> None:
        assert self._out is not None
        self._out.emit_to(LATE, batch)

    def _late_fused(self, batch: pa.RecordBatch) -> None:
        self._late(batch.select(DETECTION.names))

    def _emit(self, incidents: pa.Table | None) -> None:
        if incidents is None or incidents.num_rows == 0:
            return
        incidents = self._first_of_episodes(incidents)
        if incidents.num_rows == 0:
            return
        assert self._out is not None
        for batch in incidents.to_batches():
            self._out.emit(batch)

    def _first_of_episodes(self, incidents: pa.Table) -> pa.Table:
        """Drops an incident whose episode was raised less than ``repeat_after_s`` before."""
        ids = incidents.column("incident_id").to_pylist()
        starts = _ms(incidents.column("window_start"))
        ends = _ms(incidents.column("window_end"))
        keep = np.ones(len(ids), dtype=bool)
        for i, (incident_id, start, end) in enumerate(zip(ids, starts, ends, strict=True)):
            episode = incident_id.replace(f":{start}", "", 1)
            last = self.raised.get(episode)
            if last is not None and start < last + self.repeat_after_ms:
                keep[i] = False
            else:
                self.raised[episode] = int(end)
        if len(self.raised) > 10_000:  # forget episodes long over
            newest = max(self.raised.values())
            self.raised = {k: v for k, v in self.raised.items() if v >= newest - self.repeat_after_ms}
        return incidents if keep.all() else incidents.filter(pa.array(keep))

    # ---- incidents ------------------------------------------------------------------------

    def _incidents(
        self,
        kind: str,
        windows: pa.RecordBatch,
        key_columns: list[str],
        severity: np.ndarray,
        evidence: pa.Array,
        weather_prefix: str = WEATHER_PREFIX,
        cameras: pa.Array | None = None,
        districts: pa.Array | None = None,
    ) -> pa.Table:
        n = windows.num_rows
        district = windows.column("district") if districts is None else districts
        start_ms = pc.cast(windows.column("window_start"), pa.int64()).cast(pa.string())
        parts = [pa.array([kind] * n, pa.string()), district]
        parts += [pc.cast(windows.column(k), pa.string()) for k in key_columns]
        parts.append(start_ms)
        incident_id = pc.binary_join_element_wise(*parts, ":")
        if cameras is None:
            cameras = pa.array([[c] for c in windows.column("camera").to_pylist()], pa.list_(pa.string()))
        now = pa.array(np.full(n, int(time.time() * 1000), dtype=np.int64), pa.int64()).cast(TIME)
        ingest = windows.column("ingest_time") if "ingest_time" in windows.schema.names else pa.nulls(n, TIME)
        columns = {
            "incident_id": incident_id,
            "district": district,
            "kind": pa.array([kind] * n, pa.string()),
            "severity": pa.array(np.clip(severity, 1, 5).astype(np.int64)),
            "window_start": windows.column("window_start"),
            "window_end": windows.column("window_end"),
            "cameras": cameras,
            "evidence": evidence,
            **{f"weather_{name}": windows.column(weather_prefix + name).cast(pa.float64()) for name in WEATHER_CONTEXT},
            "trigger_time": windows.column("trigger_time"),
            "ingest_time": ingest,
            "emit_time": now,
        }
        gateways = [self.city.gateway_for(d, kind) for d in pc.cast(district, pa.string()).to_pylist()]
        columns["gateway"] = pa.array(gateways, pa.string())
        return pa.table(columns, schema=INCIDENT)

    def _intrusions(self, w: pa.RecordBatch) -> pa.Table:
        hour = ((_ms(w.column("trigger_time")) + KST_OFFSET_MS) // 3_600_000) % 24
        night = (hour >= 22) | (hour < 6)
        severity = 3 + night.astype(np.int64)
        evidence = _text(
            "person track ",
            w.column("track_id"),
            " in restricted zone ",
            w.column("zone"),
            " of ",
            w.column("camera"),
            ": ",
            w.column("detections"),
            " detections, confidence up to ",
            _rounded(w.column("confidence_max"), 2),
            pa.array(np.where(night, " (at night)", ""), pa.string()),
        )
        return self._incidents("intrusion", w, ["camera", "zone", "track_id"], severity, evidence)

    def _loiterers(self, w: pa.RecordBatch) -> pa.Table | None:
        stayed_s = (_ms(w.column("trigger_time")) - _ms(w.column("first_seen"))) / 1000
        keep = stayed_s >= self.rules_config.loitering_min_s
        if not keep.any():
            return None
        w = w.filter(pa.array(keep))
        stayed_s = stayed_s[keep]
        restricted = pc.fill_null(pc.equal(w.column("zone_kind_last"), "restricted"), False).to_numpy(zero_copy_only=False)
        severity = 2 + restricted.astype(np.int64)
        evidence = _text(
            "person track ",
            w.column("track_id"),
            " stayed ",
            pa.array(np.round(stayed_s).astype(np.int64)).cast(pa.string()),
            " s in view of ",
            w.column("camera"),
            " (",
            w.column("detections"),
            " detections)",
        )
        return self._incidents("loitering", w, ["camera", "track_id"], severity, evidence)

    def _crowds(self, w: pa.RecordBatch) -> pa.Table | None:
        r = self.rules_config
        persons = w.column("persons").to_numpy(zero_copy_only=False)
        keep = persons >= r.crowd_min_persons
        if not keep.any():
            return None
        w = w.filter(pa.array(keep))
        persons = persons[keep]
        dusty = _filled(w.column(WEATHER_PREFIX + "pm10"), 0.0) >= r.dust_levels[1]
        severity = 2 + (persons >= 2 * r.crowd_min_persons) + dusty
        evidence = _text(
            pa.array(persons).cast(pa.string()),
            " people in view of ",
            w.column("camera"),
            " within ",
            pa.array([f"{r.crowd_window_s:g}"] * w.num_rows),
            " s",
            pa.array(np.where(dusty, " during yellow dust", ""), pa.string()),
        )
        return self._incidents("crowd", w, ["camera"], severity, evidence)

    def _fires(self, w: pa.RecordBatch) -> pa.Table | None:
        r = self.rules_config
        keep = w.column("detections").to_numpy(zero_copy_only=False) >= r.fire_min_detections
        if not keep.any():
            return None
        w = w.filter(pa.array(keep))
        fire_seen = pc.equal(w.column("label_max"), "smoke").to_numpy(zero_copy_only=False) == False  # noqa: E712
        fire_seen |= w.column("labels").to_numpy(zero_copy_only=False) > 1
        wind = _filled(w.column(WEATHER_PREFIX + "wind_speed"), 0.0)
        humidity = _filled(w.column(WEATHER_PREFIX + "humidity"), 100.0)
        strong, dry = wind >= r.fire_strong_wind, humidity <= r.fire_dry_humidity
        severity = np.minimum(3 + fire_seen + strong + dry, 5)
        what = pa.array(np.where(fire_seen, "fire", "smoke"), pa.string())
        evidence = _text(
            what,
            " seen by ",
            w.column("camera"),
            ": ",
            w.column("detections"),
            " detections, confidence up to ",
            _rounded(w.column("confidence_max"), 2),
            "; wind ",
            _rounded(pa.array(wind), 1),
            " m/s from ",
            _rounded(w.column(WEATHER_PREFIX + "wind_direction"), 0),
            " deg, humidity ",
            _rounded(pa.array(humidity), 0),
            "%",
        )
        incidents = self._incidents("fire", w, ["camera"], severity, evidence)
        warnings = self._downwind_warnings(w, strong, severity)
        return incidents if warnings is None else pa.concat_tables([incidents, warnings])

    def _downwind_warnings(self, w: pa.RecordBatch, strong: np.ndarray, severity: np.ndarray) -> pa.Table | None:
        """Smoke travels away from where the wind blows from: warn the neighbour that way."""
        directions = _filled(w.column(WEATHER_PREFIX + "wind_direction"), np.nan)
        districts = w.column("district").to_pylist()
        rows, targets = [], []
        for i in np.flatnonzero(strong & ~np.isnan(directions)):
            downwind = (directions[i] + 180.0) % 360.0
            for neighbour, bearing in self.neighbours.get(districts[i], {}).items():
                if abs((bearing - downwind + 180.0) % 360.0 - 180.0) <= 45.0:
                    rows.append(i)
                    targets.append(neighbour)
        if not rows:
            return None
        picked = w.take(pa.array(rows))
        source = pa.array([districts[i] for i in rows], pa.string())
        evidence = _text(
            "smoke from a fire in ",
            source,
            " (",
            picked.column("camera"),
            ") carried here by a ",
            _rounded(picked.column(WEATHER_PREFIX + "wind_speed"), 1),
            " m/s wind",
        )
        warning = self._incidents(
            "fire", picked, ["camera", "district"], severity[rows] - 1, evidence, districts=pa.array(targets, pa.string())
        )
        ids = pc.binary_join_element_wise(warning.column("incident_id"), pa.array(["warn"] * len(rows)), ":")
        return warning.set_column(0, "incident_id", ids)

    def _road(self, w: pa.RecordBatch) -> pa.Table:
        r = self.rules_config
        rain = _filled(w.column(WEATHER_PREFIX + "precipitation"), 0.0) >= r.road_heavy_rain
        fog = _filled(w.column(WEATHER_PREFIX + "visibility"), np.inf) <= r.road_poor_visibility
        severity = 3 + rain + fog
        evidence = _text(
            "collision on ",
            w.column("camera"),
            ": ",
            w.column("detections"),
            " detections; rain ",
            _rounded(w.column(WEATHER_PREFIX + "precipitation"), 1),
            " mm/h, visibility ",
            _rounded(w.column(WEATHER_PREFIX + "visibility"), 0),
            " m",
        )
        return self._incidents("road", w, ["camera"], severity, evidence)

    def _dust_incidents(self, w: pa.RecordBatch) -> pa.Table | None:
        levels = np.array(self.rules_config.dust_levels)
        mean = _filled(w.column("pm10_mean"), 0.0)
        level = np.searchsorted(levels, mean, side="right")  # 0: below the first level
        keep = level > 0
        if not keep.any():
            return None
        w = w.filter(pa.array(keep))
        severity = level[keep] + 1
        evidence = _text(
            "PM10 mean ",
            _rounded(w.column("pm10_mean"), 0),
            " ug/m3, peak ",
            _rounded(w.column("pm10_max"), 0),
            " over ",
            w.column("readings"),
            " readings",
        )
        empty = pa.array([[] for _ in range(w.num_rows)], pa.list_(pa.string()))
        return self._incidents("yellow_dust", w, [], severity, evidence, weather_prefix="", cameras=empty)


def _ms(column: pa.Array) -> np.ndarray:
    return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)


def _filled(column: pa.Array, value: float) -> np.ndarray:
    return pc.fill_null(pc.cast(column, pa.float64()), value).to_numpy(zero_copy_only=False)


def _rounded(column: pa.Array, digits: int) -> pa.Array:
    values = pc.round(pc.cast(column, pa.float64()), digits)
    text = pc.cast(values if digits else pc.cast(values, pa.int64()), pa.string())
    return pc.fill_null(text, "?")


def _text(*parts: object) -> pa.Array:
    """Joins literal strings and arrays element-wise into one string array."""
    length = next(len(p) for p in parts if isinstance(p, pa.Array | pa.ChunkedArray))
    arrays = [
        pa.array([p] * length, pa.string()) if isinstance(p, str) else pc.fill_null(pc.cast(p, pa.string()), "?") for p in parts
    ]
    return pc.binary_join_element_wise(*arrays, "")
