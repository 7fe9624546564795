"""The backend services behind the gateway: where they are, their channels, forwarding calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import grpc
from careops.common.v1 import admin_pb2
from careops_platform.errors import FieldViolation, InvalidArgument
from careops_platform.identity import current_principal
from careops_platform.interceptors import ACTOR_METADATA
from careops_platform.internal_identity import IDENTITY_METADATA, InternalSigner
from careops_platform.registry import BACKEND_METADATA
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer(__name__)

Metadata = Sequence[tuple[str, str | bytes]]

# Request metadata a proxy must not copy: HTTP/2 pseudo-headers, transport headers, and the
# trace context (the gateway's own span context is injected instead, continuing the trace), and
# the caller's credentials: they are the gateway's to verify, not the services' to see.
_HOP_BY_HOP = frozenset(
    {
        "content-type",
        "user-agent",
        "te",
        "host",
        "traceparent",
        "tracestate",
        "baggage",
        "authorization",
        # Identity is the gateway's to state: a caller's claim of either is dropped.
        ACTOR_METADATA,
        IDENTITY_METADATA,
    }
)
# Channel options: a backend that comes back is reconnected within seconds, not minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Services every backend serves, each for itself (its own read models): a call names the
# backend it is for in BACKEND_METADATA (HTTP: the CareOps-Backend header).
SHARED_SERVICES = (admin_pb2.DESCRIPTOR.services_by_name["ProjectionAdminService"].full_name,)


class CallKind(Enum):
    """The call shapes the gateway forwards (the backends' protos use only these two)."""

    UNARY = "unary"
    SERVER_STREAMING = "server_streaming"


@dataclass(frozen=True)
class Route:
    """One forwardable RPC: its full path and descriptor, and the backend that serves it."""

    path: str
    method: MethodDescriptor
    kind: CallKind
    backend: Backend

    def for_call(self, metadata: Metadata | None) -> Route:
        """Returns the route a call takes: this one (one backend serves the method)."""
        return self


@dataclass(frozen=True)
class SharedRoute:
    """An RPC of a shared service: the backend is the one the call names in `careops-backend`."""

    path: str
    method: MethodDescriptor
    kind: CallKind
    choices: Mapping[str, Route]

    def for_call(self, metadata: Metadata | None) -> Route:
        """Returns the route to the backend the call names; raises InvalidArgument naming the
        allowed values when the name is missing or unknown (before anything is forwarded)."""
        named = next((value for key, value in metadata or () if key == BACKEND_METADATA), "")
        route = self.choices.get(named) if isinstance(named, str) else None
        if route is not None:
            return route
        allowed = ", ".join(self.choices)
        problem = f"unknown backend {named!r}" if named else "missing"
        raise InvalidArgument(
            f"{self.path} is served by every service: name one in {BACKEND_METADATA} "
            f"metadata ({allowed}); {problem}",
            [FieldViolation(BACKEND_METADATA, f"{problem}; one of {allowed}")],
        )


AnyRoute = Route | SharedRoute


@dataclass
class Backend:
    """A backend service process and the gateway's channel to it (open between start and close)."""

    name: str
    service: str
    address: str
    channel: grpc.aio.Channel | None = field(default=None, repr=False)
    signer: InternalSigner | None = field(default=None, repr=False)

    def open(self, signer: InternalSigner) -> None:
        """Opens the channel; forwarded calls present their principal signed by `signer`."""
        self.channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self.signer = signer

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    def connected(self) -> grpc.aio.Channel:
        if self.channel is None:
            raise RuntimeError(f"backend {self.name} is not open")
        return self.channel

    @property
    def descriptor(self) -> ServiceDescriptor:
        return descriptor_pool.Default().FindServiceByName(self.service)


def _kind(method: MethodDescriptor) -> CallKind:
    if method.client_streaming:
        raise ValueError(f"{method.full_name}: client streaming is not forwarded by the gateway")
    return CallKind.SERVER_STREAMING if method.server_streaming else CallKind.UNARY


def routes(backends: Iterable[Backend]) -> dict[str, Route]:
    """Returns every RPC of the backends by its path (/package.Service/Method)."""
    table: dict[str, Route] = {}
    for backend in backends:
        for method in backend.descriptor.methods:
            path = f"/{backend.service}/{method.name}"
            table[path] = Route(path, method, _kind(method), backend)
    return table


def shared_routes(backends: Iterable[Backend]) -> dict[str, SharedRoute]:
    """Returns every RPC of the shared services by its path, routed to any of the backends."""
    backends = list(backends)
    table: dict[str, SharedRoute] = {}
    for service in SHARED_SERVICES:
        for method in descriptor_pool.Default().FindServiceByName(service).methods:
            path = f"/{service}/{method.name}"
            kind = _kind(method)
            choices = {backend.name: Route(path, method, kind, backend) for backend in backends}
            table[path] = SharedRoute(path, method, kind, choices)
    return table


def outgoing_metadata(
    metadata: Metadata | None, signer: InternalSigner | None = None
) -> list[tuple[str, str | bytes]]:
    """Returns the caller's metadata to forward, with the current trace context injected and,
    for an authenticated call, the verified principal signed by `signer` (`careops-identity`):
    whoever the caller claims to be, the service and the events the call causes see who it is.
    Without a principal nothing is signed, and the service refuses the call."""
    principal = current_principal()
    forwarded = [
        (key, value)
        for key, value in metadata or ()
        if not key.startswith(":") and not key.startswith("grpc-") and key not in _HOP_BY_HOP
    ]
    if principal is not None and signer is not None:
        forwarded.extend(signer.metadata(principal))
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    forwarded.extend(carrier.items())
    return forwarded


def unavailable_message(route: Route, error: grpc.aio.AioRpcError) -> str | None:
    """Returns a message naming the backend when `error` is a failed connection, else None.

    A backend's own UNAVAILABLE (its event log is unreachable) carries google.rpc.Status
    details and is passed through unchanged; a transport failure carries none."""
    if error.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    trailers = error.trailing_metadata() or ()
    if any(key == STATUS_DETAILS_KEY for key, _ in trailers):
        return None
    backend = route.backend
    return f"{backend.name} ({backend.service}) is unavailable at {backend.address}: " + (
        error.details() or "no connection"
    )


def _span_attributes(route: Route) -> dict[str, str]:
    return {
        "rpc.system": "grpc",
        "rpc.service": route.backend.service,
        "rpc.method": route.method.name,
        "peer.service": route.backend.name,
        "server.address": route.backend.address,
    }


async def call_unary(
    route: Route, request: bytes, metadata: Metadata | None, timeout: float | None
) -> bytes:
    """Forwards one unary call as raw bytes; raises grpc.aio.AioRpcError as the backend answered."""
    with tracer.start_as_current_span(
        f"gateway→{route.backend.name} {route.method.name}",
        kind=SpanKind.CLIENT,
        attributes=_span_attributes(route),
    ) as span:
        call = route.backend.connected().unary_unary(route.path)
        try:
            response: bytes = await call(
                request, metadata=outgoing_metadata(metadata, route.backend.signer), timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            span.set_attribute("rpc.grpc.status", error.code().name)
            raise
        return response


async def call_stream(
    route: Route,
    request: bytes,
    metadata: Metadata | None,
    timeout: float | None,
    accepted: asyncio.Event | None = None,
) -> AsyncIterator[bytes]:
    """Forwards one server-streaming call, yielding the backend's messages as raw bytes; sets
    `accepted` once the backend has sent its response headers without ending the call (before
    its first message when the servicer sends its initial metadata early)."""
    with tracer.start_as_current_span(
        f"gateway→{route.backend.name} {route.method.name}",
        kind=SpanKind.CLIENT,
        attributes=_span_attributes(route),
    ) as span:
        call = route.backend.connected().unary_stream(route.path)(
            request, metadata=outgoing_metadata(metadata, route.backend.signer), timeout=timeout
        )
        try:
            if accepted is not None:
                await call.initial_metadata()
                if not call.done():
                    accepted.set()
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            span.set_attribute("rpc.grpc.status", error.code().name)
            raise
        finally:
            call.cancel()


@dataclass(frozen=True)
class HealthReport:
    """What one backend's health check answered."""

    backend: Backend
    serving: bool
    reachable: bool
    latency: float
    error: str


async def check(backend: Backend, timeout: float) -> HealthReport:
    """Asks the backend's grpc.health.v1 service about its own service name."""
    stub = health_pb2_grpc.HealthStub(backend.connected())
    started = time.perf_counter()
    try:
        reply = await stub.Check(
            health_pb2.HealthCheckRequest(service=backend.service), timeout=timeout
        )
    except grpc.aio.AioRpcError as error:
        reachable = error.code() not in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        return HealthReport(
            backend,
            serving=False,
            reachable=reachable,
            latency=time.perf_counter() - started,
            error=f"{error.code().name}: {error.details()}",
        )
    latency = time.perf_counter() - started
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return HealthReport(
        backend, serving, True, latency, "" if serving else f"health status {status}"
    )


async def check_all(backends: Sequence[Backend], timeout: float) -> list[HealthReport]:
    """Checks every backend concurrently; returns the reports in the backends' order."""
    return list(await asyncio.gather(*(check(backend, timeout) for backend in backends)))
