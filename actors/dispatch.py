"""The police gateways' gRPC dispatch service (``citystream.v1.IncidentService``), served with
grpc.aio on uvloop in a thread of the gateway's actor.

Consoles authenticate with a bearer token scoped to districts; each subscriber has a bounded
queue, and one that falls too far behind is disconnected with RESOURCE_EXHAUSTED (it resumes
from its last sequence number: the incident log keeps everything). Health checking and server
reflection are on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from actors.incident_log import IncidentLog
from actors.schemas import WEATHER_CONTEXT
from actors.topology import Dispatch
from engine.errors import CitystreamError
from protos.citystream.v1 import dispatch_pb2, dispatch_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE = dispatch_pb2.DESCRIPTOR.services_by_name["IncidentService"].full_name
LIST_LIMIT, LIST_MAX = 100, 1000


def incident_protos(table: pa.Table | pa.RecordBatch) -> list[dispatch_pb2.Incident]:
    """Incidents (schema ``actors.schemas.INCIDENT``) as protobuf messages (sequence unset)."""
    out = []
    for row in table.to_pylist():
        weather = {name: row[f"weather_{name}"] for name in WEATHER_CONTEXT if row[f"weather_{name}"] is not None}
        incident = dispatch_pb2.Incident(
            incident_id=row["incident_id"],
            gateway=row["gateway"] or "",
            district=row["district"],
            kind=row["kind"],
            severity=row["severity"],
            cameras=row["cameras"] or [],
            evidence=row["evidence"] or "",
            weather=dispatch_pb2.Weather(**weather),
        )
        for name in ("window_start", "window_end", "trigger_time", "ingest_time", "emit_time"):
            if row[name] is not None:
                getattr(incident, name).CopyFrom(_timestamp(row[name]))
        out.append(incident)
    return out


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    console: str
    districts: frozenset[str]  # the districts it may see; "*" in it: all


@dataclass(eq=False)
class _Subscriber:
    principal: Principal
    districts: frozenset[str]
    kinds: frozenset[str]
    min_severity: int
    capacity: int
    queue: deque[dispatch_pb2.Incident] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False

    def wants(self, incident: dispatch_pb2.Incident) -> bool:
        return (
            incident.district in self.districts
            and (not self.kinds or incident.kind in self.kinds)
            and incident.severity >= self.min_severity
        )


class IncidentService(dispatch_pb2_grpc.IncidentServiceServicer):
    """Serves one gateway's incident log; ``publish`` is called on the server's event loop."""

    def __init__(self, log: IncidentLog, config: Dispatch, all_districts: Iterable[str]) -> None:
        self.log = log
        self.config = config
        self.all_districts = frozenset(all_districts)
        self.tokens = {t.token_sha256: Principal(t.console, frozenset(t.districts)) for t in config.tokens}
        self.subscribers: set[_Subscriber] = set()

    # ---- security -------------------------------------------------------------------------

    async def _principal(self, context: grpc.aio.ServicerContext) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        header = metadata.get("authorization", "")
        if not isinstance(header, str) or not header.lower().startswith("bearer "):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required (metadata 'authorization: Bearer ...')"
            )
        principal = self.tokens.get(token_digest(header[7:].strip()))
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        assert principal is not None
        return principal

    def _allowed(self, principal: Principal) -> frozenset[str]:
        return self.all_districts if "*" in principal.districts else principal.districts & self.all_districts

    async def _districts(self, principal: Principal, asked: Sequence[str], context: grpc.aio.ServicerContext) -> frozenset[str]:
        allowed = self._allowed(principal)
        if not asked:
            return allowed
        outside = sorted(set(asked) - allowed)
        if outside:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"console '{principal.console}' may not see districts {outside}; it may see {sorted(allowed)}",
            )
        return frozenset(asked)

    # ---- the service ----------------------------------------------------------------------

    async def Subscribe(
        self, request: dispatch_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[dispatch_pb2.Incident]:
        principal = await self._principal(context)
        districts = await self._districts(principal, request.districts, context)
        kinds = frozenset(request.kinds)
        subscriber = _Subscriber(principal, districts, kinds, request.min_severity, self.config.subscriber_queue)
        # Registered before the backlog is read: nothing logged meanwhile can fall between.
        self.subscribers.add(subscriber)
        last = request.resume_after
        try:
            for incident in self.log.read_after(last):
                if subscriber.wants(incident):
                    yield incident
                last = max(last, incident.sequence)
            while True:
                while subscriber.queue:
                    incident = subscriber.queue.popleft()
                    if incident.sequence > last:
                        last = incident.sequence
                        yield incident
                if subscriber.overflowed:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"console too slow: more than {subscriber.capacity} incidents waiting; "
                        f"resume after sequence {last} to get everything since",
                    )
                subscriber.wake.clear()
                if not subscriber.queue and not subscriber.overflowed:
                    await subscriber.wake.wait()
        finally:
            self.subscribers.discard(subscriber)

    def publish(self, incidents: Sequence[dispatch_pb2.Incident]) -> None:
        """Hands newly logged incidents to every subscriber that wants them (event loop only)."""
        for subscriber in list(self.subscribers):
            if subscriber.overflowed:
                continue
            wanted = [i for i in incidents if subscriber.wants(i)]
            if not wanted:
                continue
            if len(subscriber.queue) + len(wanted) > subscriber.capacity:
                subscriber.overflowed = True
                subscriber.queue.clear()
            else:
                subscriber.queue.extend(wanted)
            subscriber.wake.set()

    async def Acknowledge(
        self, request: dispatch_pb2.AcknowledgeRequest, context: grpc.aio.ServicerContext
    ) -> dispatch_pb2.Incident:
        principal = await self._principal(context)
        await self._visible(principal, request.sequence, None, context)
        # The acknowledgement is fsynced: off the event loop, so that no stream waits for the disk.
        return await asyncio.to_thread(self.log.acknowledge, request.sequence, principal.console, request.officer, request.note)

    async def GetIncident(
        self, request: dispatch_pb2.GetIncidentRequest, context: grpc.aio.ServicerContext
    ) -> dispatch_pb2.Incident:
        principal = await self._principal(context)
        which = request.WhichOneof("key")
        if which is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give a sequence or an incident_id")
        sequence = request.sequence if which == "sequence" else None
        return await self._visible(principal, sequence, request.incident_id if which == "incident_id" else None, context)

    async def _visible(
        self, principal: Principal, sequence: int | None, incident_id: str | None, context: grpc.aio.ServicerContext
    ) -> dispatch_pb2.Incident:
        """The incident if it exists and the console may see it; NOT_FOUND otherwise (an
        incident of another district is not even admitted to exist)."""
        try:
            incident = self.log.get(sequence) if sequence is not None else self.log.get_by_id(incident_id or "")
        except (KeyError, CitystreamError):
            incident = None
        if incident is None or incident.district not in self._allowed(principal):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident {sequence if sequence is not None else incident_id!r}")
        assert incident is not None
        return incident

    async def ListIncidents(
        self, request: dispatch_pb2.ListIncidentsRequest, context: grpc.aio.ServicerContext
    ) -> dispatch_pb2.ListIncidentsResponse:
        principal = await self._principal(context)
        districts = await self._districts(principal, request.districts, context)
        limit = min(request.limit or LIST_LIMIT, LIST_MAX)
        kinds = frozenset(request.kinds)
        found = [
            i
            for i in self.log.read_after(request.after)
            if i.district in districts and (not kinds or i.kind in kinds) and i.severity >= request.min_severity
        ]
        return dispatch_pb2.ListIncidentsResponse(incidents=found[:limit], last_sequence=self.log.last_sequence)


class DispatchServer:
    """Runs the incident service of one gateway on its own uvloop event loop thread."""

    def __init__(self, gateway: str, port: int, config: Dispatch, log: IncidentLog, districts: Iterable[str]) -> None:
        self.gateway = gateway
        self.requested_port = port
        self.config = config
        self.service = IncidentService(log, config, districts)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        """Starts serving; returns host:port."""
        self._thread = threading.Thread(target=self._run, name=f"dispatch {self.gateway}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise CitystreamError(f"gateway {self.gateway}: the dispatch server did not start within {timeout} s")
        if self._error is not None:
            raise CitystreamError(f"gateway {self.gateway}: the dispatch server could not start: {self._error}") from self._error
        return self.address

    def _run(self) -> None:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()

    async def _serve(self) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        dispatch_pb2_grpc.add_IncidentServiceServicer_to_server(self.service, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        target = f"{self.config.host}:{self.requested_port}"
        if self.config.insecure:
            self.port = server.add_insecure_port(target)
            logger.warning("gateway %s: dispatch on port %d WITHOUT TLS (config: insecure = true)", self.gateway, self.port)
        else:
            credentials = grpc.ssl_server_credentials(
                [(Path(self.config.tls_key).read_bytes(), Path(self.config.tls_cert).read_bytes())]
            )
            self.port = server.add_secure_port(target, credentials)
        await server.start()
        await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        self._server = server

    def publish(self, incidents: Sequence[dispatch_pb2.Incident]) -> None:
        """From any thread: hands logged incidents to the subscribers."""
        if incidents and self._loop is not None:
            self._loop.call_soon_threadsafe(self.service.publish, list(incidents))

    def stop(self, grace: float = 1.0) -> None:
        loop, server = self._loop, self._server
        if loop is None:
            return
        if server is not None:
            asyncio.run_coroutine_threadsafe(server.stop(grace), loop).result(timeout=grace + 5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = None


def channel_credentials(ca_cert: str | None) -> Any:
    """Client credentials trusting ``ca_cert`` (PEM path), or None for plaintext."""
    return grpc.ssl_channel_credentials(Path(ca_cert).read_bytes()) if ca_cert else None
