"""gRPC edge: the backends' RPCs forwarded byte for byte, and GatewayService."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
from careops.customer.v1 import customer_pb2
from careops.gateway.v1 import gateway_pb2 as pb
from careops.incident.v1 import incident_pb2
from careops.quality.v1 import quality_pb2
from careops.ticketing.v1 import ticketing_pb2
from careops_platform.errors import Unimplemented
from careops_platform.identity import caller
from careops_platform.permissions import PermissionTable, default_table

from gateway.audit import AuditReader
from gateway.backends import (
    AnyRoute,
    Backend,
    CallKind,
    HealthReport,
    Route,
    call_stream,
    call_unary,
    check_all,
    unavailable_message,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
# Backend name -> the full name of the service it serves. Importing the generated modules puts
# their descriptors in the default pool, which routing, reflection and the JSON mapping read.
BACKEND_SERVICES = {
    "ticketing": ticketing_pb2.DESCRIPTOR.services_by_name["TicketingService"].full_name,
    "customer": customer_pb2.DESCRIPTOR.services_by_name["CustomerProfileService"].full_name,
    "incident": incident_pb2.DESCRIPTOR.services_by_name["IncidentService"].full_name,
    "quality": quality_pb2.DESCRIPTOR.services_by_name["QualityService"].full_name,
}


def deadline(context: grpc.aio.ServicerContext) -> float | None:
    """Returns the caller's remaining time, so the backend call keeps the caller's deadline."""
    remaining: float | None = context.time_remaining()
    return remaining


async def abort_as_backend(
    context: grpc.aio.ServicerContext, route: Route, error: grpc.aio.AioRpcError
) -> NoReturn:
    """Ends the call with the backend's status code, message and trailers (google.rpc.Status
    details included); a backend that cannot be reached is named in the message."""
    named = unavailable_message(route, error)
    if named is not None:
        await context.abort(grpc.StatusCode.UNAVAILABLE, named)
    trailers = tuple(
        (key, value) for key, value in error.trailing_metadata() or () if not key.startswith(":")
    )
    await context.abort(error.code(), error.details() or "", trailing_metadata=trailers)
    raise AssertionError("unreachable: abort raises")


class ProxyHandler(grpc.GenericRpcHandler):
    """Serves one service's methods by forwarding them; requests stay raw bytes. A shared
    service's call goes to the backend it names (backends.SharedRoute)."""

    def __init__(self, routes: Mapping[str, AnyRoute]) -> None:
        self._handlers = {path: self._handler(route) for path, route in routes.items()}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)  # type: ignore[attr-defined]

    @staticmethod
    def _handler(served: AnyRoute) -> grpc.RpcMethodHandler:
        if served.kind is CallKind.SERVER_STREAMING:

            async def stream(
                request: bytes, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[bytes]:
                metadata = context.invocation_metadata()
                route = served.for_call(metadata)
                try:
                    async for message in call_stream(route, request, metadata, deadline(context)):
                        yield message
                except grpc.aio.AioRpcError as error:
                    await abort_as_backend(context, route, error)

            return grpc.unary_stream_rpc_method_handler(stream)

        async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            metadata = context.invocation_metadata()
            route = served.for_call(metadata)
            try:
                return await call_unary(route, request, metadata, deadline(context))
            except grpc.aio.AioRpcError as error:
                await abort_as_backend(context, route, error)

        return grpc.unary_unary_rpc_method_handler(unary)


def register_proxy(handler: ProxyHandler, server: grpc.aio.Server) -> None:
    """ServiceBinding.register for a ProxyHandler."""
    server.add_generic_rpc_handlers((handler,))


def backend_status(report: HealthReport) -> pb.BackendStatus:
    backend = report.backend
    if report.serving:
        health = pb.BACKEND_HEALTH_SERVING
    elif report.reachable:
        health = pb.BACKEND_HEALTH_NOT_SERVING
    else:
        health = pb.BACKEND_HEALTH_UNREACHABLE
    status = pb.BackendStatus(
        name=backend.name,
        service=backend.service,
        address=backend.address,
        health=health,
        error=report.error,
    )
    status.latency.FromNanoseconds(round(report.latency * 1e9))
    return status


class GatewayServicer:
    """careops.gateway.v1.GatewayService."""

    def __init__(
        self,
        backends: Sequence[Backend],
        check_timeout: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: AuditReader | None = None,
        permissions: PermissionTable | None = None,
    ) -> None:
        self._backends = list(backends)
        # The table the gateway enforces (GatewayService.use_permissions sets the configured one).
        self.permissions = permissions or default_table()
        self._check_timeout = check_timeout
        self._clock = clock
        self._audit = audit

    async def GetPlatformStatus(
        self, request: pb.GetPlatformStatusRequest, context: Any
    ) -> pb.GetPlatformStatusResponse:
        reports = await check_all(self._backends, self._check_timeout)
        response = pb.GetPlatformStatusResponse(
            backends=[backend_status(report) for report in reports],
            all_serving=all(report.serving for report in reports),
        )
        response.checked_at.FromDatetime(self._clock())
        return response

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Any
    ) -> pb.ListAuditEventsResponse:
        if self._audit is None:
            raise Unimplemented("this gateway reads no event log")
        return await self._audit.list(request)

    async def GetMyPermissions(
        self, request: pb.GetMyPermissionsRequest, context: Any
    ) -> pb.GetMyPermissionsResponse:
        principal = caller()
        table = self.permissions
        methods = sorted(m for m in table.methods() if table.allows(principal.roles, m))
        names = {permission.name for m in methods if (permission := table.permission(m))}
        return pb.GetMyPermissionsResponse(
            subject=principal.subject,
            roles=sorted(principal.roles),
            methods=[method.removeprefix("/") for method in methods],
            permissions=sorted(names),
        )
