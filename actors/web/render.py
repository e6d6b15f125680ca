"""HTML of the operations-center screen and of the residents' pages, drawn from the topology
(an SVG map: no map tiles from the internet). The residents' page carries no camera id,
position or personal data: only a district's weather, its dust advisory and counts by kind."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

from actors.schemas import INCIDENT_KINDS, WEATHER_CONTEXT
from actors.topology import City

WIDTH, HEIGHT, MARGIN = 800, 560, 40
SEVERITY_COLOURS = {1: "#4c9be8", 2: "#57b85a", 3: "#e8c547", 4: "#e8873a", 5: "#d9363e"}
UNITS = {
    "temperature": "°C",
    "humidity": "%",
    "wind_speed": "m/s",
    "wind_direction": "°",
    "pm10": "µg/m³",
    "precipitation": "mm/h",
    "visibility": "m",
}
# PM10 (µg/m³) bands of the Korean air-quality index: good, moderate, bad, very bad.
DUST_ADVICE = [
    (0.0, "good", "Air is clean."),
    (31.0, "moderate", "Sensitive people should limit long outdoor exertion."),
    (81.0, "bad", "Yellow dust: wear a KF80 mask outdoors and keep windows closed."),
    (151.0, "very bad", "Heavy yellow dust: stay indoors if you can; wear a KF94 mask outside."),
]


def projection(city: City) -> Mapping[str, tuple[float, float]]:
    """SVG coordinates of every district, camera and station, by id: the city's bounding box of
    latitudes and longitudes fitted into the drawing (north up)."""
    points = [(d.id, d.lat, d.lon) for d in city.districts]
    points += [(c.id, c.lat, c.lon) for c in city.cameras] + [(s.id, s.lat, s.lon) for s in city.stations]
    lats, lons = [p[1] for p in points], [p[2] for p in points]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    span = max(north - south, east - west) or 1.0
    scale = min(WIDTH, HEIGHT) - 2 * MARGIN
    return {
        name: (MARGIN + (lon - west) / span * scale, HEIGHT - MARGIN - (lat - south) / span * scale)
        for name, lat, lon in points
    }


def map_svg(city: City, districts: set[str] | None = None) -> str:
    """The districts (with their name), cameras (squares) and stations (triangles) of the
    districts given (None: all), each element carrying its id for the page's script."""
    where = projection(city)
    shown = [d for d in city.districts if districts is None or d.id in districts]
    parts = [f'<svg id="map" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img">']
    for district in shown:
        x, y = where[district.id]
        name = html.escape(district.name)
        parts.append(
            f'<g class="district" data-district="{district.id}"><circle cx="{x:.1f}" cy="{y:.1f}" r="70" '
            f'fill="#eef3f8" stroke="#8aa"/><text x="{x:.1f}" y="{y - 76:.1f}" text-anchor="middle">{name}</text></g>'
        )
    ids = {d.id for d in shown}
    for camera in (c for c in city.cameras if c.district in ids):
        x, y = where[camera.id]
        parts.append(
            f'<rect class="camera" data-camera="{camera.id}" data-district="{camera.district}" x="{x - 5:.1f}" '
            f'y="{y - 5:.1f}" width="10" height="10" fill="#345"><title>{html.escape(camera.id)}</title></rect>'
        )
    for station in (s for s in city.stations if s.district in ids):
        x, y = where[station.id]
        parts.append(
            f'<polygon class="station" data-station="{station.id}" data-district="{station.district}" '
            f'points="{x:.1f},{y - 7:.1f} {x - 6:.1f},{y + 5:.1f} {x + 6:.1f},{y + 5:.1f}" fill="#2a7">'
            f"<title>{html.escape(station.id)}</title></polygon>"
        )
    parts.append("</svg>")
    return "".join(parts)


def dust_advice(pm10: float | None) -> tuple[str, str]:
    """The PM10 band and its advice (the last band whose floor it reaches)."""
    if pm10 is None:
        return "unknown", "No reading yet."
    band, advice = DUST_ADVICE[0][1:]
    for floor, name, text in DUST_ADVICE:
        if pm10 >= floor:
            band, advice = name, text
    return band, advice


def residents_page(city: City, district: str, weather: Mapping[str, float] | None, counts: Mapping[str, int]) -> str:
    """A district's public page: the current weather (the seven fields), the dust advisory, and
    yesterday's incidents by kind (a 24-hour window the engine computes). No camera, no
    position, no person."""
    name = next(d.name for d in city.districts if d.id == district)
    rows = "".join(
        f"<tr><th>{field.replace('_', ' ')}</th><td>{weather[field]:.1f} {UNITS[field]}</td></tr>"
        for field in WEATHER_CONTEXT
        if weather is not None and field in weather
    )
    band, advice = dust_advice(None if weather is None else weather.get("pm10"))
    kinds = "".join(
        f"<tr><th>{kind.replace('_', ' ')}</th><td>{counts.get(kind, 0)}</td></tr>" for kind in INCIDENT_KINDS
    )
    warning = f'<p class="advisory {band.replace(" ", "-")}">Yellow dust: {band}. {html.escape(advice)}</p>'
    return (
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(name)}</title></head>"
        f"<body><h1>{html.escape(name)}</h1><h2>Weather now</h2><table class=\"weather\">{rows}</table>{warning}"
        f"<h2>Safety: incidents in the last 24 hours</h2><table class=\"counts\">{kinds}</table>"
        "<p>Keep valuables out of sight, walk lit streets at night, and call 112 in an emergency.</p></body></html>"
    )


# The page's script: an EventSource on /events (the browser reconnects by itself and sends the
# last id it saw; the server sends what it missed), incidents on the map and in a list coloured
# by severity (a click shows the evidence and the weather of that moment), the latest weather
# per district, the pipeline's health.
SCRIPT = """
const colours = %(colours)s;
const token = new URLSearchParams(location.search).get("token") || "";
const source = new EventSource("/events?token=" + encodeURIComponent(token));
const status = document.getElementById("status");
source.onopen = () => { status.textContent = "live"; };
source.onerror = () => { status.textContent = "reconnecting ..."; };
source.addEventListener("incident", (e) => {
  const i = JSON.parse(e.data);
  if (document.getElementById("incident-" + i.incident_id)) return;
  const li = document.createElement("li");
  li.id = "incident-" + i.incident_id;
  li.className = "incident severity-" + i.severity;
  li.style.borderLeft = "8px solid " + colours[i.severity];
  li.textContent = `${i.window_end} ${i.district} ${i.kind} (severity ${i.severity})`;
  li.onclick = () => {
    document.getElementById("detail").textContent = i.evidence + "\\n" +
      Object.entries(i.weather).map(([k, v]) => `${k}: ${v}`).join(", ");
  };
  document.getElementById("incidents").prepend(li);
  for (const camera of i.cameras) {
    const mark = document.querySelector(`[data-camera="${camera}"]`);
    if (mark) mark.setAttribute("fill", colours[i.severity]);
  }
});
source.addEventListener("weather", (e) => {
  const w = JSON.parse(e.data);
  for (const [field, value] of Object.entries(w.values)) {
    const cell = document.getElementById(`weather-${w.district}-${field}`);
    if (cell) {
      cell.textContent = value.toFixed(1);
      cell.dataset.updates = String(Number(cell.dataset.updates || 0) + 1);
    }
  }
});
source.addEventListener("health", (e) => {
  document.getElementById("health").textContent = JSON.stringify(JSON.parse(e.data));
});
"""


def operations_page(city: City, districts: set[str]) -> str:
    """The operations-center screen for an operator who may see ``districts``."""
    shown = [d for d in city.districts if d.id in districts]
    header = "".join(f"<th>{f.replace('_', ' ')} ({UNITS[f]})</th>" for f in WEATHER_CONTEXT)
    rows = "".join(
        f"<tr><th>{html.escape(d.name)}</th>"
        + "".join(f'<td id="weather-{d.id}-{f}">-</td>' for f in WEATHER_CONTEXT)
        + "</tr>"
        for d in shown
    )
    script = SCRIPT % {"colours": json.dumps(SEVERITY_COLOURS)}
    return (
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(city.name)}</title>"
        "<style>body{font-family:sans-serif;margin:1em}#incidents{list-style:none;padding:0}"
        ".incident{padding:2px 6px;margin:2px 0;cursor:pointer}</style></head><body>"
        f"<h1>{html.escape(city.name)} <small id=\"status\">connecting ...</small></h1>"
        + map_svg(city, districts)
        + f"<table id=\"weather\"><tr><th></th>{header}</tr>{rows}</table>"
        + '<h2>Incidents</h2><ul id="incidents"></ul><pre id="detail"></pre><h2>Pipeline</h2><pre id="health"></pre>'
        + f"<script>{script}</script></body></html>"
    )
