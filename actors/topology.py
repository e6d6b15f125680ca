"""The city topology: districts, cameras (with their zones), weather stations, police gateways,
the routing of incidents, the rules' thresholds and the simulation, read from one TOML file.

Every key is checked: an unknown key, a missing one, a value of the wrong type or out of range,
or a reference to a district, camera or gateway that does not exist is a ``ConfigError`` that
names the key (``cameras[3].district``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.schemas import INCIDENT_KINDS, ZONE_KINDS
from engine.errors import CitystreamError

DEFAULT_CONFIG = Path(__file__).parent / "config" / "incheon.toml"


class ConfigError(CitystreamError):
    """The topology config is wrong; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"config key '{key}': {message}")


@dataclass(frozen=True)
class Zone:
    """A region of a camera's frame, in 0..1 coordinates (x from the left, y from the top)."""

    name: str
    kind: str  # one of ZONE_KINDS
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Camera:
    id: str
    district: str
    lat: float
    lon: float
    zones: tuple[Zone, ...] = ()
    group: str = ""  # cameras of one group run in one actor; "" = the district's group


@dataclass(frozen=True)
class Station:
    id: str
    district: str
    lat: float
    lon: float


@dataclass(frozen=True)
class District:
    id: str
    name: str
    lat: float
    lon: float
    # Neighbouring districts by compass bearing from this one (degrees): where a fire's smoke
    # goes when the wind blows from the opposite side.
    neighbours: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Gateway:
    id: str
    name: str
    port: int = 0  # gRPC port of the dispatch service (0: any free port)


@dataclass(frozen=True)
class Route:
    """Incidents of these districts and kinds go to ``gateway``; "*" matches all."""

    gateway: str
    districts: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Rules:
    """Thresholds of the incident rules."""

    intrusion_min_confidence: float = 0.6
    intrusion_window_s: float = 60.0  # one incident per track and zone per window
    loitering_gap_s: float = 20.0  # a track unseen this long has left
    loitering_min_s: float = 90.0  # a track staying longer than this is loitering
    crowd_window_s: float = 30.0
    crowd_min_persons: int = 15  # distinct person tracks per camera and window
    fire_window_s: float = 10.0
    fire_min_detections: int = 3
    fire_min_confidence: float = 0.5
    fire_strong_wind: float = 8.0  # m/s: severity +1, neighbours downwind are warned
    fire_dry_humidity: float = 35.0  # percent: severity +1
    road_min_confidence: float = 0.6
    road_window_s: float = 30.0
    road_heavy_rain: float = 4.0  # mm/h: severity +1
    road_poor_visibility: float = 1000.0  # metres: severity +1
    dust_window_s: float = 600.0
    dust_levels: tuple[float, ...] = (81.0, 151.0, 301.0, 600.0)  # PM10 means for severity 2..5
    weather_tolerance_s: float = 600.0  # a detection older than this past the last reading gets no weather
    # While a condition lasts (a fire burning, a crowd staying), the same camera, track or
    # district raises the same kind again only after this much event time.
    repeat_after_s: float = 300.0


@dataclass(frozen=True)
class Simulation:
    seed: int = 7
    detections_per_camera_per_s: float = 20.0
    reading_interval_s: float = 10.0
    start: str = "2026-05-01T08:00:00+09:00"  # event time of a replay (not real time)
    batch_ms: int = 200  # event time each camera batch covers
    out_of_orderness_ms: int = 500


@dataclass(frozen=True)
class ConsoleToken:
    """A dispatch console's credential: the SHA-256 (hex) of its bearer token, and the
    districts it may see ("*": all). The config never holds the token itself."""

    console: str
    token_sha256: str
    districts: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Dispatch:
    """The gateways' gRPC dispatch service."""

    host: str = "127.0.0.1"
    insecure: bool = False  # plaintext: only when the config says so (a warning is logged)
    tls_cert: str = ""  # PEM files, relative to the config file
    tls_key: str = ""
    # The gateways' incident logs; a relative path is taken from $CITYSTREAM_HOME, or else the
    # working directory.
    log_dir: str = "var/incidents"
    subscriber_queue: int = 1000  # incidents a console may lag behind before it is disconnected
    # Live runs also take detections (port) and readings (port + 1) pushed by edge devices
    # (citystream.v1.IngestService); -1: no ingest; 0: any free ports.
    ingest_port: int = -1
    tokens: tuple[ConsoleToken, ...] = ()


@dataclass(frozen=True)
class Checkpoints:
    """Checkpoints of the city job (``engine.checkpoint.CheckpointOptions``).

    ``directory``: a local path (relative: from $CITYSTREAM_HOME, or else the working
    directory) or a URI pyarrow.fs understands (``s3://bucket/prefix`` on a cluster).
    ``interval_s``: 0 turns checkpoints off (a failed actor then fails the job).
    """

    directory: str = "var/checkpoints"
    interval_s: float = 1.0
    keep: int = 3
    timeout_s: float = 60.0
    max_restarts: int = 3


@dataclass(frozen=True)
class Screen:
    """The operations-center screen and the residents' pages (HTTP on ``dispatch.host``;
    ``port`` 0: any free port). ``counts_window_s``: the tumbling window of the residents'
    daily incident counts."""

    port: int = 8080
    counts_window_s: float = 86_400.0


PLACEMENT_STRATEGIES = ("spread", "strict_spread", "pack", "strict_pack", "none")


@dataclass(frozen=True)
class Placement:
    """Where the city's actors run on a Ray cluster (``cluster/placement.py``).

    ``districts``: how the district actors are placed, each in a placement-group bundle of
    ``district_cpus`` CPUs: ``spread`` over the nodes (on a cluster of one node: as Ray
    pleases), ``strict_spread`` (a node each), ``pack``, ``strict_pack``, or ``none`` (no
    bundles: Ray's default placement). ``sources_near_district``: each camera-group and
    station actor runs in its district's bundle (its rows reach the district without leaving
    the node). ``gateway_resource``: the custom resource of the nodes labelled for the police
    gateways (``ray start --resources='{"gateway": 1}'``; "": any node); ``gateway_nodes``:
    ``required`` (the gateways wait for labelled nodes) or ``preferred`` (any node when none
    is labelled).
    """

    districts: str = "spread"
    district_cpus: float = 1.0
    sources_near_district: bool = True
    gateway_resource: str = "gateway"
    gateway_nodes: str = "preferred"


@dataclass(frozen=True)
class City:
    name: str
    districts: tuple[District, ...]
    cameras: tuple[Camera, ...]
    stations: tuple[Station, ...]
    gateways: tuple[Gateway, ...]
    routes: tuple[Route, ...]
    rules: Rules = Rules()
    simulation: Simulation = Simulation()
    dispatch: Dispatch = Dispatch()
    checkpoints: Checkpoints = Checkpoints()
    placement: Placement = Placement()
    screen: Screen = Screen()

    def district_ids(self) -> list[str]:
        return [d.id for d in self.districts]

    def camera_groups(self) -> list[list[Camera]]:
        """Cameras by actor: one list per group, in the order groups first appear."""
        groups: dict[str, list[Camera]] = {}
        for camera in self.cameras:
            groups.setdefault(camera.group or camera.district, []).append(camera)
        return list(groups.values())

    def gateway_for(self, district: str, kind: str) -> str:
        """The first route that matches; every (district, kind) has one (checked on load)."""
        for route in self.routes:
            if ("*" in route.districts or district in route.districts) and ("*" in route.kinds or kind in route.kinds):
                return route.gateway
        raise ConfigError("routes", f"no route for district '{district}' and kind '{kind}'")


def load_city(path: str | Path = DEFAULT_CONFIG, overrides: typing.Sequence[str] = ()) -> City:
    """Reads and checks a topology file; ``overrides`` (``KEY=VALUE``, see ``apply_override``)
    change it before it is checked."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(str(path), "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    for override in overrides:
        apply_override(raw, override)
    return with_paths_resolved(city_from_dict(raw), path.parent)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Sets one key of a raw config: ``KEY=VALUE``, the key dotted (``checkpoints.directory``,
    ``gateways.0.port``: a number picks an item of a list), the value a TOML value (``1.5``,
    ``true``, ``["a", "b"]``) or else taken as a string (``s3://bucket/prefix``). A table
    missing on the way is created; the result is checked like the file."""
    key, sep, text = override.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key:
        raise ConfigError(override, "an override is KEY=VALUE, such as checkpoints.interval_s=5")
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text
    node: Any = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(here, f"no item {part!r} in a list of {len(node)}")
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(here, f"'{'.'.join(parts[:depth])}' is a value, not a table or a list")


def city_from_dict(raw: dict[str, Any]) -> City:
    city = _build(City, raw, "")
    _check_references(city)
    return city


def with_paths_resolved(city: City, config_dir: Path) -> City:
    """Absolute paths for the files the actors open (they may run in another directory)."""
    d = city.dispatch
    resolve = lambda p, base: str((base / p).resolve()) if p else p
    home = Path(os.environ.get("CITYSTREAM_HOME") or Path.cwd()).expanduser()
    dispatch = dataclasses.replace(
        d, tls_cert=resolve(d.tls_cert, config_dir), tls_key=resolve(d.tls_key, config_dir), log_dir=resolve(d.log_dir, home)
    )
    checkpoints = city.checkpoints
    if "://" not in checkpoints.directory:
        checkpoints = dataclasses.replace(checkpoints, directory=resolve(checkpoints.directory, home))
    return dataclasses.replace(city, dispatch=dispatch, checkpoints=checkpoints)


def _build(cls: type, raw: Any, key: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(key or "(top)", f"expected a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(_join(key, unknown[0]), f"unknown key; {cls.__name__.lower()} keys are {sorted(fields)}")
    values = {}
    for name, spec in fields.items():
        sub = _join(key, name)
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(sub, "missing")
            continue
        values[name] = _convert(hints[name], raw[name], sub)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)  # type: ignore[arg-type]
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {type(value).__name__}")
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {type(value).__name__}")
        return {k: _convert(item, v, f"{key}.{k}") for k, v in value.items()}
    if origin in (types.UnionType, typing.Union):
        raise ConfigError(key, "unsupported type in the config schema")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported type {hint}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _unique(items: tuple[Any, ...], key: str) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            raise ConfigError(f"{key}[{i}].id", f"'{item.id}' appears twice")
        seen.add(item.id)
    return seen


def _check_references(city: City) -> None:
    districts = _unique(city.districts, "districts")
    _unique(city.cameras, "cameras")
    _unique(city.stations, "stations")
    gateways = _unique(city.gateways, "gateways")
    lists: dict[str, tuple[Any, ...]] = {
        "districts": city.districts,
        "cameras": city.cameras,
        "stations": city.stations,
        "gateways": city.gateways,
    }
    for name, items in lists.items():
        if not items:
            raise ConfigError(name, "at least one is needed")
    for i, district in enumerate(city.districts):
        for other, bearing in district.neighbours.items():
            if other not in districts:
                raise ConfigError(f"districts[{i}].neighbours.{other}", f"unknown district; districts are {sorted(districts)}")
            if not 0 <= bearing < 360:
                raise ConfigError(f"districts[{i}].neighbours.{other}", f"bearing {bearing} is outside [0, 360)")
    placed: dict[str, tuple[Camera | Station, ...]] = {"cameras": city.cameras, "stations": city.stations}
    for kind, items in placed.items():
        for i, item in enumerate(items):
            if item.district not in districts:
                known = sorted(districts)
                raise ConfigError(f"{kind}[{i}].district", f"unknown district '{item.district}'; districts are {known}")
    for i, camera in enumerate(city.cameras):
        for j, zone in enumerate(camera.zones):
            where = f"cameras[{i}].zones[{j}]"
            if zone.kind not in ZONE_KINDS:
                raise ConfigError(f"{where}.kind", f"'{zone.kind}' is not one of {list(ZONE_KINDS)}")
            if not (0 <= zone.x0 < zone.x1 <= 1 and 0 <= zone.y0 < zone.y1 <= 1):
                raise ConfigError(where, "needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    for district in city.districts:
        if not any(station.district == district.id for station in city.stations):
            raise ConfigError("stations", f"district '{district.id}' has no weather station")
    for i, route in enumerate(city.routes):
        if route.gateway not in gateways:
            raise ConfigError(f"routes[{i}].gateway", f"unknown gateway '{route.gateway}'; gateways are {sorted(gateways)}")
        for d in route.districts:
            if d != "*" and d not in districts:
                raise ConfigError(f"routes[{i}].districts", f"unknown district '{d}'")
        for k in route.kinds:
            if k != "*" and k not in INCIDENT_KINDS:
                raise ConfigError(f"routes[{i}].kinds", f"unknown kind '{k}'; kinds are {list(INCIDENT_KINDS)}")
    for district_id in districts:
        for kind in INCIDENT_KINDS:
            city.gateway_for(district_id, kind)  # raises if a combination has no route
    rules = city.rules
    if len(rules.dust_levels) != 4 or list(rules.dust_levels) != sorted(rules.dust_levels):
        raise ConfigError("rules.dust_levels", "needs 4 increasing PM10 levels (severity 2, 3, 4, 5)")
    dispatch = city.dispatch
    if not dispatch.insecure and not (dispatch.tls_cert and dispatch.tls_key):
        raise ConfigError("dispatch.tls_cert", "TLS needs tls_cert and tls_key (or insecure = true, for local runs only)")
    if dispatch.subscriber_queue < 1:
        raise ConfigError("dispatch.subscriber_queue", "must be >= 1")
    placement = city.placement
    if placement.districts not in PLACEMENT_STRATEGIES:
        raise ConfigError("placement.districts", f"'{placement.districts}' is not one of {list(PLACEMENT_STRATEGIES)}")
    if placement.districts != "none" and not placement.district_cpus > 0:
        raise ConfigError("placement.district_cpus", "must be above 0 (the district's bundle reserves it), or districts = 'none'")
    if placement.gateway_nodes not in ("required", "preferred"):
        raise ConfigError("placement.gateway_nodes", f"'{placement.gateway_nodes}' is not 'required' or 'preferred'")
    if placement.gateway_nodes == "required" and not placement.gateway_resource:
        raise ConfigError("placement.gateway_nodes", "'required' needs a gateway_resource to look for")
    for i, token in enumerate(dispatch.tokens):
        if len(token.token_sha256) != 64 or any(c not in "0123456789abcdef" for c in token.token_sha256):
            raise ConfigError(f"dispatch.tokens[{i}].token_sha256", "must be 64 lowercase hex digits (sha256 of the token)")
        for d in token.districts:
            if d != "*" and d not in districts:
                raise ConfigError(f"dispatch.tokens[{i}].districts", f"unknown district '{d}'")
    simulation = city.simulation
    if simulation.detections_per_camera_per_s <= 0:
        raise ConfigError("simulation.detections_per_camera_per_s", "must be > 0")
    if simulation.reading_interval_s <= 0:
        raise ConfigError("simulation.reading_interval_s", "must be > 0")
    if simulation.batch_ms <= 0:
        raise ConfigError("simulation.batch_ms", "must be > 0")
