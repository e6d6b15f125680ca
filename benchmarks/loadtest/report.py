"""The load test's Markdown summary and its plot (latency percentiles and throughput over time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3f}"


def _n(value: float | int | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A Markdown table; the first ``left`` columns are aligned left, the others right."""
    align = ["---" if i < left else "---:" for i in range(len(header))]
    return ["| " + " | ".join(cells) + " |" for cells in [header, align, *rows]]


def _percentiles(f: dict[str, Any]) -> list[str]:
    return [_n(f["count"]), *(_ms(f[k]) for k in ("p50", "p90", "p99", "p99.9", "max", "mean"))]


LATENCY_ROWS = {
    "all": "detection -> console, all",
    "after_warmup": "detection -> console, after the warm-up",
    "due_to_emit": "window end -> district raised it",
    "emit_to_logged": "district -> gateway logged it",
    "logged_to_console": "gateway log -> console",
}


def markdown(r: dict[str, Any]) -> str:
    o, city, det, inc, lat, dl = r["options"], r["city"], r["detections"], r["incidents"], r["latency_ms"], r["delivery"]
    scale = o["scale"]
    if o["ramp"]:
        offered = f"a ramp of {', '.join(_n(x) for x in o['ramp'])} detections/s, {o['step_s']:g} s a step"
    else:
        offered = f"{_n(o['rate'])} detections/s for {o['duration_s']:g} s"
    machine = r["machine"]
    lines = [
        "# Load test",
        "",
        f"{r['date']}, {machine['cpus']} CPUs, Python {machine['python']}, Ray {machine['ray']}; "
        f"load average at the end {machine['load_average']}.",
        "",
        f"Offered (open loop): {offered}; intrusions {o['intrusions_per_s']:g}/s. City: {city['districts']} districts, "
        f"{city['cameras']} cameras in {scale['camera_tasks']} camera actors, {city['stations']} stations in "
        f"{scale['station_tasks']} station actors, {city['gateways']} gateways, {city['consoles']} consoles "
        f"(separate processes, gRPC). Channels: linger {o['linger_ms']:g} ms, {o['credits']} credits, "
        f"{_n(o['batch_rows'])} rows a frame. Start-up {r['startup_s']} s; stop {r['stop_s']} s.",
        "",
        "Latency of an incident = console receipt - the end of its window (the earliest the rule can raise it: rows are "
        "stamped with their scheduled times, so a stalled engine cannot hide its delay). "
        f"Warm-up: the first {o['warmup_s']:g} s.",
        "",
    ]
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(inc["by_kind"].items())) or "-"
    lines += _table(
        ["detections scheduled", "detections in", "sustained mean /s", "sustained min /s", "incidents raised", "expected"]
        + ["by kind", "raised by the stop"],
        [
            [_n(det["scheduled"]), _n(det["in"]), _n(det["sustained_mean_per_s"]), _n(det["sustained_min_per_s"])]
            + [_n(inc["raised"]), _n(inc["expected_intrusions"]), by_kind, str(inc["raised_by_stop"])]
        ],
        left=0,
    )
    lines += [""]
    lines += _table(
        ["latency (ms)", "samples", "p50", "p90", "p99", "p99.9", "max", "mean"],
        [[label, *_percentiles(lat[key])] for key, label in LATENCY_ROWS.items()],
    )
    complete = "yes" if dl["every_console_has_all_it_is_entitled_to"] else "NO"
    lines += ["", f"Every console received every incident it is entitled to, once: **{complete}**", ""]
    lines += _table(
        ["console", "gateway", "districts", "entitled", "received", "missing", "not entitled", "reconnects"],
        [
            [str(c["console"]), c["gateway"], ", ".join(c["districts"])]
            + [str(c[k]) for k in ("entitled", "received", "missing", "not_entitled", "reconnects")]
            for c in dl["consoles"]
        ],
        left=3,
    )
    if r.get("ramp"):
        ramp = r["ramp"]
        best = _n(ramp["highest_passing_rate"])
        lines += ["", f"Ramp: highest rate that kept up with p99 under {ramp['p99_bound_ms']:g} ms: **{best} detections/s**", ""]
        lines += _table(
            ["rate /s", "reached /s", "backlog rows", "incidents", "p50 ms", "p99 ms", "max ms", "passed"],
            [
                [_n(s["rate"]), _n(s["reached_per_s"]), _n(s["backlog_rows"]), _n(s["latency_ms"]["count"])]
                + [_ms(s["latency_ms"][k]) for k in ("p50", "p99", "max")]
                + ["yes" if s["passed"] else "no"]
                for s in ramp["steps"]
            ],
            left=0,
        )
    lines += ["", "Per second (latency of the incidents received in that second; memory: the Ray actor processes):", ""]
    rows = []
    for s in r["per_second"]:
        f = s["latency_ms"]
        rss = sum(v["rss_kib"] for v in s["memory"].values()) / 1024
        anon = sum(v["anon_kib"] for v in s["memory"].values()) / 1024
        store = s["object_store"].get("bytes_used")
        rows.append(
            [f"{s['t_s']:.1f}", _n(s["target_per_s"]), _n(s["detections_per_s"]), str(s["incidents_per_s"])]
            + [_ms(f["p50"]), _ms(f["p99"]), _ms(f["max"]), _n(s["watermark_lag_ms"]), f"{s['backpressure_s_per_s']:.3f}"]
            + [f"{rss:,.0f}", f"{anon:,.0f}", "-" if store is None else f"{store / 2**20:,.1f}"]
        )
    lines += _table(
        ["t s", "target /s", "detections /s", "incidents /s", "p50 ms", "p99 ms", "max ms", "watermark lag ms"]
        + ["backpressure s/s", "actors RSS MB", "private MB", "object store MB"],
        rows,
        left=0,
    )
    refused = r["refused"]
    lines += [
        "",
        f"Refused detections {refused['refused_detections']}, refused readings {refused['refused_readings']}, "
        f"late detections {refused['late_detections']}.",
        "",
    ]
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    """Two panels over the run's time: latency percentiles (log scale), and detections/s
    offered and taken in with incidents/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["per_second"]
    t = [s["t_s"] for s in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for key, style in (("p50", "-"), ("p99", "-"), ("p99.9", ":"), ("max", "--")):
        values = [s["latency_ms"][key] for s in rows]
        top.plot(
            [x for x, v in zip(t, values, strict=True) if v is not None], [v for v in values if v is not None], style, label=key
        )
    top.set_yscale("log")
    top.set_ylabel("detection -> console (ms)")
    top.legend(loc="upper left")
    top.grid(True, which="both", alpha=0.3)
    top.set_title(f"citystream load test, {r['date']}")
    bottom.plot(t, [s["target_per_s"] for s in rows], "--", color="grey", label="offered")
    bottom.plot(t, [s["detections_per_s"] for s in rows], "-", label="detections in")
    bottom.set_ylabel("detections/s")
    bottom.set_xlabel("seconds since the schedule's start")
    bottom.grid(True, alpha=0.3)
    twin = bottom.twinx()
    twin.plot(t, [s["incidents_per_s"] for s in rows], ".", color="tab:red", label="incidents/s at consoles")
    twin.set_ylabel("incidents/s")
    lines, labels = bottom.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    bottom.legend(lines + more, labels + more_labels, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
