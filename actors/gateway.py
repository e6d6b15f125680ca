"""Police-gateway sinks: each receives the incidents routed to it (by district and kind) and
keeps them, in order, with counts. The gRPC dispatch service that serves them to consoles
comes with the dispatch issue."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from actors.schemas import INCIDENT
from actors.topology import City
from engine.errors import CitystreamError
from engine.operator import Collector, Sink


class PoliceGateway(Sink):
    """Task ``i`` is the city's gateway ``i``; incidents arrive partitioned by their gateway."""

    def __init__(self, city: City) -> None:
        self.ids = [g.id for g in city.gateways]
        self.gateway = ""
        self.batches: list[pa.RecordBatch] = []
        self.counts: Counter[tuple[str, str]] = Counter()

    def open(self, task_index: int, parallelism: int) -> None:
        if parallelism != len(self.ids):
            raise CitystreamError(f"police gateways run as {parallelism} tasks for {len(self.ids)} gateways")
        self.gateway = self.ids[task_index]

    def process_batch(self, batch: pa.RecordBatch, input_index: int, out: Collector) -> None:
        misrouted = set(batch.column("gateway").to_pylist()) - {self.gateway}
        if misrouted:
            raise CitystreamError(f"gateway {self.gateway} received incidents routed to {sorted(misrouted)}")
        self.batches.append(batch)
        grouped = pa.Table.from_batches([batch]).group_by(["district", "kind"], use_threads=False).aggregate([([], "count_all")])
        for district, kind, count in zip(*(grouped.column(i).to_pylist() for i in range(3)), strict=True):
            self.counts[(district, kind)] += count

    def result(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=INCIDENT)
