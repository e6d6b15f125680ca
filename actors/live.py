"""The terminal view of a running city job: rows per second per actor kind, watermark lag per
district, incidents by district and kind, and the latest incidents."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
from rich.console import Group
from rich.table import Table

from actors.topology import City
from engine.task import TaskMetrics

SEVERITY_STYLE = {1: "dim", 2: "cyan", 3: "yellow", 4: "bold red", 5: "bold white on red"}


def kind_of(task: str) -> str:
    """The actor kind of a task name: ``districts[1]`` -> ``districts``."""
    return task.split("[", 1)[0]


@dataclass
class LiveView:
    """Keeps the previous sample to turn counters into rates."""

    city: City
    _last: dict[str, int] = field(default_factory=dict)
    _last_at: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)

    def update(self, metrics: dict[str, TaskMetrics], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        rows: Counter[str] = Counter()
        for task, m in metrics.items():
            rows[kind_of(task)] += m.rows_in
        if self._last_at:
            elapsed = max(now - self._last_at, 1e-6)
            self.rates = {kind: (count - self._last.get(kind, 0)) / elapsed for kind, count in rows.items()}
        self._last, self._last_at = dict(rows), now

    def render(self, metrics: dict[str, TaskMetrics], incidents: pa.Table, elapsed_s: float) -> Group:
        return Group(self._flow(metrics, elapsed_s), self._counts(incidents), self._latest(incidents))

    def _flow(self, metrics: dict[str, TaskMetrics], elapsed_s: float) -> Table:
        table = Table(title=f"{self.city.name}: citystream, {elapsed_s:,.0f} s", title_justify="left")
        for name in ("actors", "tasks", "rows in", "rows/s", "backpressure s"):
            table.add_column(name, justify="right" if name != "actors" else "left")
        kinds: dict[str, list[TaskMetrics]] = {}
        for task, m in metrics.items():
            kinds.setdefault(kind_of(task), []).append(m)
        for kind, members in kinds.items():
            table.add_row(
                kind,
                str(len(members)),
                f"{sum(m.rows_in for m in members):,}",
                f"{self.rates.get(kind, 0.0):,.0f}",
                f"{sum(m.backpressure_s for m in members):.1f}",
            )
        now_ms = int(time.time() * 1000)
        lags = []
        for i, district in enumerate(self.city.district_ids()):
            of_district = metrics.get(f"districts[{i}]")
            lag = of_district.watermark_lag_ms(now_ms) if of_district is not None else None
            lags.append(f"{district} {lag / 1000:,.1f} s" if lag is not None else f"{district} -")
        table.caption = "watermark lag: " + ", ".join(lags)
        return table

    def _counts(self, incidents: pa.Table) -> Table:
        kinds = sorted({k for k in incidents.column("kind").to_pylist()}) if incidents.num_rows else []
        table = Table(title="incidents by district and kind", title_justify="left")
        table.add_column("district")
        for kind in kinds:
            table.add_column(kind, justify="right")
        table.add_column("total", justify="right")
        counts = Counter(zip(incidents.column("district").to_pylist(), incidents.column("kind").to_pylist(), strict=True))
        for district in self.city.district_ids():
            row = [counts.get((district, kind), 0) for kind in kinds]
            table.add_row(district, *[str(c) for c in row], str(sum(row)))
        return table

    def _latest(self, incidents: pa.Table, count: int = 8) -> Table:
        table = Table(title="latest incidents", title_justify="left")
        for name in ("event time", "district", "kind", "sev", "gateway", "evidence"):
            table.add_column(name)
        if incidents.num_rows:
            latest = incidents.sort_by([("emit_time", "descending")]).slice(0, count)
            for row in latest.to_pylist():
                table.add_row(
                    f"{row['trigger_time']:%H:%M:%S}" if row["trigger_time"] else "-",
                    row["district"],
                    row["kind"],
                    str(row["severity"]),
                    row["gateway"],
                    row["evidence"],
                    style=SEVERITY_STYLE.get(row["severity"], ""),
                )
        return table
