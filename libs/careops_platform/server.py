"""grpc.aio server bootstrap: health, reflection, interceptors, metrics and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from prometheus_client import start_http_server

from careops_platform.interceptors import default_interceptors
from careops_platform.internal_identity import InternalVerifier

log = logging.getLogger(__name__)

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class HealthServicer(health.aio.HealthServicer):
    """grpc.health.v1.Health with `List` (grpcio-health-checking leaves it unimplemented)."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: Any
    ) -> health_pb2.HealthListResponse:
        """Returns the status of every service this server reports on."""
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._server_status.items()
            }
        )


def _reflection_v1_file() -> None:
    """Adds grpc.reflection.v1 to the default descriptor pool, so reflection can describe
    itself under both names. The pinned grpcio-reflection (1.85.1, the newest) ships only
    v1alpha; v1 is the same file under another package, wire-compatible message for message."""
    pool = descriptor_pool.Default()
    name = "grpc/reflection/v1/reflection.proto"
    try:
        pool.FindFileByName(name)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name, proto.package = name, "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(old, new)
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(old, new)
        method.output_type = method.output_type.replace(old, new)
    pool.Add(proto)


def enable_reflection(
    service_names: Sequence[str], server: grpc.aio.Server | GenericRegistrations
) -> None:
    """Serves server reflection as grpc.reflection.v1 and v1alpha (ARCHITECTURE §5): one
    servicer, registered under both service names."""
    _reflection_v1_file()
    names = [*service_names, reflection.SERVICE_NAME, REFLECTION_V1]
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, handlers),)
    )


class GenericRegistrations:
    """The server as the generated `add_*_to_server` functions see it: their generic handlers
    are added, their registered-method tables left out.

    grpc.aio (1.85) keeps a pending call request for every registered method and, for each
    call it accepts, waits on all of them again with `asyncio.wait` (a callback added to and
    removed from each): with a service's 30–50 methods that was 20–50 µs of CPU per call
    (docs/benchmarks.md §16, session 29). Generic handlers are found by the method's name
    behind a single pending request; callers see the same services and statuses."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        """Left out: the generic handler added beside it serves the same methods."""


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer, the generated function that registers it and its full proto name."""

    servicer: Any
    register: Callable[[Any, Any], None]
    full_name: str


class GrpcServer:
    """One service process's gRPC endpoint; health is SERVING only while `ready`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        bindings: Sequence[ServiceBinding],
        error_map: Mapping[type[Exception], grpc.StatusCode] | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        credentials: grpc.ServerCredentials | None = None,
        identity: InternalVerifier | None = None,
    ) -> None:
        # `credentials`: TLS on the port (the gateway's public edge); None: plaintext.
        # `identity`: the verifier of the gateway's signed identity every call but health and
        # reflection must present; None: no such wall (the gateway, which checks its callers).
        # `interceptors` run innermost, after tracing, metrics and status mapping saw the call.
        chain = [*default_interceptors(error_map, identity), *interceptors]
        self._server = grpc.aio.server(interceptors=chain)
        self._bindings = list(bindings)
        self.health = HealthServicer()
        registrations = GenericRegistrations(self._server)
        for binding in self._bindings:
            binding.register(binding.servicer, registrations)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registrations)
        enable_reflection([*(b.full_name for b in self._bindings), HEALTH], registrations)
        address = f"{host}:{port}"
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC to {host}:{port}")

    async def start(self) -> None:
        await self._server.start()
        await self.set_serving(False)

    async def set_serving(self, serving: bool) -> None:
        """Sets the health status under "" and under every service name."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *(binding.full_name for binding in self._bindings)]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.set_serving(False)
        await self._server.stop(grace)


def start_metrics(host: str, port: int) -> Any:
    """Serves Prometheus /metrics on host:port from a background thread; returns the server."""
    server, _thread = start_http_server(port, addr=host)
    return server


async def run_until_signalled(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    """Runs `start`, waits for SIGTERM or SIGINT, then runs `stop`. A signal during `start`
    (still waiting for NATS, say) cancels it rather than waiting for it to finish."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    starting = asyncio.ensure_future(start())
    signalled = asyncio.ensure_future(stopping.wait())
    await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    if not starting.done():
        starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting  # re-raises a failed start-up
    await stopping.wait()
    log.info("shutting down")
    await stop()
