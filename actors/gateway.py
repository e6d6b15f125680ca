"""Police-gateway sinks: each receives the incidents routed to it (by district and kind),
appends them to its durable incident log (sequence numbers, deduplicated by incident id) and
serves them to dispatch consoles over gRPC (``actors.dispatch``)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from actors.schemas import INCIDENT
from actors.topology import City
from engine.errors import CitystreamError
from engine.operator import Collector, Sink

if TYPE_CHECKING:
    from actors.dispatch import DispatchServer
    from actors.incident_log import IncidentLog

logger = logging.getLogger(__name__)


class PoliceGateway(Sink):
    """Task ``i`` is the city's gateway ``i``; incidents arrive partitioned by their gateway.

    With ``serve`` (the default), the gateway logs its incidents under the config's
    ``dispatch.log_dir`` and serves them on its port; the address is written to
    ``<log_dir>/<gateway>.address`` for consoles and tools.
    """

    def __init__(self, city: City, serve: bool = True) -> None:
        self.city = city
        self.serve = serve
        self.ids = [g.id for g in city.gateways]
        self.gateway = ""
        self.batches: list[pa.RecordBatch] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.logged = 0
        self._log: IncidentLog | None = None
        self._server: DispatchServer | None = None

    def open(self, task_index: int, parallelism: int) -> None:
        if parallelism != len(self.ids):
            raise CitystreamError(f"police gateways run as {parallelism} tasks for {len(self.ids)} gateways")
        self.gateway = self.ids[task_index]
        if not self.serve:
            return
        from actors.dispatch import DispatchServer
        from actors.incident_log import IncidentLog

        log_dir = Path(self.city.dispatch.log_dir)
        log = self._log = IncidentLog(log_dir, self.gateway)
        port = self.city.gateways[task_index].port
        server = self._server = DispatchServer(self.gateway, port, self.city.dispatch, log, self.city.district_ids())
        address = server.start()
        (log_dir / f"{self.gateway}.address").write_text(address)
        logger.info("gateway %s serves incidents on %s", self.gateway, address)

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        misrouted = set(batch.column("gateway").to_pylist()) - {self.gateway}
        if misrouted:
            raise CitystreamError(f"gateway {self.gateway} received incidents routed to {sorted(misrouted)}")
        self.batches.append(batch)
        grouped = pa.Table.from_batches([batch]).group_by(["district", "kind"], use_threads=False).aggregate([([], "count_all")])
        for district, kind, count in zip(*(grouped.column(i).to_pylist() for i in range(3)), strict=True):
            self.counts[(district, kind)] += count
        if self._log is not None and self._server is not None:
            from actors.dispatch import incident_protos  # loaded with the server in open()

            stored = self._log.append(incident_protos(batch))  # durable (fsync) before anyone sees it
            self.logged += len(stored)
            self._server.publish(stored)

    def snapshot(self) -> dict[str, Any]:
        """``{"batches": table, "counts": {(district, kind): n}, "logged": int}``: the incidents
        kept for the job result and their counts. The incident log is not checkpoint state: it
        is durable by itself, and incidents replayed after a restore are deduplicated by id."""
        return {"batches": self.result(), "counts": dict(self.counts), "logged": self.logged}

    def restore(self, state: dict[str, Any]) -> None:
        self.batches = state["batches"].to_batches()
        self.counts = Counter(state["counts"])
        self.logged = state["logged"]

    def close(self) -> None:
        (Path(self.city.dispatch.log_dir) / f"{self.gateway}.address").unlink(missing_ok=True)
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def result(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=INCIDENT)
