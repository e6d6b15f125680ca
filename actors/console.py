"""A dispatch console: subscribes to a gateway's incidents, prints them, acknowledges them on
request, and after a disconnect resumes from the last sequence number it saw."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from protos.citystream.v1 import dispatch_pb2, dispatch_pb2_grpc

logger = logging.getLogger(__name__)

# Errors after which a console reconnects and resumes; any other status is final.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED)


@dataclass
class ConsoleClient:
    """Args:
    address: host:port of a gateway.
    token: the console's bearer token.
    ca_cert: PEM of the CA that signed the gateway's certificate; None: plaintext.
    districts, kinds, min_severity: the subscription's filters.
    resume_after: the last sequence number already seen.
    """

    address: str
    token: str
    ca_cert: str | None = None
    districts: Sequence[str] = ()
    kinds: Sequence[str] = ()
    min_severity: int = 0
    resume_after: int = 0
    reconnects: int = 0
    disconnects: list[str] = field(default_factory=list)

    def _channel(self) -> grpc.aio.Channel:
        if self.ca_cert:
            credentials = grpc.ssl_channel_credentials(Path(self.ca_cert).read_bytes())
            return grpc.aio.secure_channel(self.address, credentials)
        return grpc.aio.insecure_channel(self.address)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    async def incidents(self, retry_delay: float = 0.5, max_retries: int | None = None) -> AsyncIterator[dispatch_pb2.Incident]:
        """Incidents as they come, forever: reconnects and resumes after each disconnect."""
        failures = 0
        while True:
            request = dispatch_pb2.SubscribeRequest(
                districts=list(self.districts),
                kinds=list(self.kinds),
                min_severity=self.min_severity,
                resume_after=self.resume_after,
            )
            async with self._channel() as channel:
                stub = dispatch_pb2_grpc.IncidentServiceStub(channel)
                try:
                    async for incident in stub.Subscribe(request, metadata=self.metadata):
                        failures = 0
                        self.resume_after = incident.sequence
                        yield incident
                    return  # the server ended the stream
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in RETRYABLE:
                        raise
                    failures += 1
                    self.disconnects.append(f"{exc.code().name}: {exc.details()}")
                    if max_retries is not None and failures > max_retries:
                        raise
                    logger.warning("disconnected (%s: %s); resuming after %d", exc.code().name, exc.details(), self.resume_after)
            self.reconnects += 1
            await asyncio.sleep(retry_delay)

    async def acknowledge(self, sequence: int, officer: str = "", note: str = "") -> dispatch_pb2.Incident:
        async with self._channel() as channel:
            stub = dispatch_pb2_grpc.IncidentServiceStub(channel)
            request = dispatch_pb2.AcknowledgeRequest(sequence=sequence, officer=officer, note=note)
            return await stub.Acknowledge(request, metadata=self.metadata)

    async def list(self, after: int = 0, limit: int = 0) -> dispatch_pb2.ListIncidentsResponse:
        async with self._channel() as channel:
            stub = dispatch_pb2_grpc.IncidentServiceStub(channel)
            request = dispatch_pb2.ListIncidentsRequest(
                districts=list(self.districts), kinds=list(self.kinds), min_severity=self.min_severity, after=after, limit=limit
            )
            return await stub.ListIncidents(request, metadata=self.metadata)


def describe(incident: dispatch_pb2.Incident) -> str:
    """One line: time, district, kind, severity, cameras, weather."""
    when = incident.trigger_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if incident.HasField("trigger_time") else "-"
    w = incident.weather
    weather = (
        f"{w.temperature:.1f}C {w.humidity:.0f}% wind {w.wind_speed:.1f}m/s@{w.wind_direction:.0f} "
        f"pm10 {w.pm10:.0f} rain {w.precipitation:.1f}mm/h vis {w.visibility:.0f}m"
    )
    cameras = ",".join(incident.cameras) or "-"
    return (
        f"#{incident.sequence:<6} {when} {incident.district:<10} {incident.kind:<11} sev {incident.severity} "
        f"[{cameras}] {weather} | {incident.evidence}"
    )


async def run_console(client: ConsoleClient, ack_as: str | None, state: Path | None, print_line: Callable[[str], None]) -> None:
    """The console loop of ``citystream console``."""
    async for incident in client.incidents():
        print_line(describe(incident))
        taken = await client.acknowledge(incident.sequence, officer=ack_as) if ack_as else None
        if state is not None:  # written whole or not at all: a crash never leaves it empty
            partial = state.with_suffix(state.suffix + ".tmp")
            partial.write_text(str(incident.sequence))
            partial.replace(state)
        if taken is not None:
            print_line(f"        acknowledged by {taken.acknowledgement.officer} ({taken.acknowledgement.console})")
