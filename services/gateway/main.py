"""Gateway process: wiring only. It holds no state and writes no events."""

from __future__ import annotations

import logging

from careops.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from careops_platform.runtime import run_process
from careops_platform.server import GrpcServer, ServiceBinding, run_until_signalled
from careops_platform.settings import ServiceSettings, load_settings
from pydantic import AliasChoices, Field

from gateway import grpc_api
from gateway.backends import Backend, routes
from gateway.http_api import HttpApi, HttpServer

log = logging.getLogger("gateway")
SERVICE = "gateway"
GRPC_PORT_ENV = "CAREOPS_GATEWAY_GRPC_PORT"
HTTP_PORT_ENV = "CAREOPS_GATEWAY_HTTP_PORT"
METRICS_PORT_ENV = "CAREOPS_GATEWAY_METRICS_PORT"
# host:port, or a DNS name / IPv6 literal in brackets with a port.
ADDRESS = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"


class GatewaySettings(ServiceSettings):
    grpc_port: int = Field(
        50050, ge=0, le=65535, validation_alias=AliasChoices("grpc_port", GRPC_PORT_ENV)
    )
    http_port: int = Field(
        8080, ge=0, le=65535, validation_alias=AliasChoices("http_port", HTTP_PORT_ENV)
    )
    metrics_port: int = Field(
        9105, ge=0, le=65535, validation_alias=AliasChoices("metrics_port", METRICS_PORT_ENV)
    )
    ticketing_addr: str = Field("127.0.0.1:50051", pattern=ADDRESS, description="ticketing gRPC")
    customer_addr: str = Field(
        "127.0.0.1:50052", pattern=ADDRESS, description="customer-profile gRPC"
    )
    incident_addr: str = Field("127.0.0.1:50053", pattern=ADDRESS, description="incident gRPC")
    quality_addr: str = Field("127.0.0.1:50054", pattern=ADDRESS, description="quality gRPC")
    http_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Deadline of a unary call made for an HTTP request"
    )
    http_stream_heartbeat_seconds: float = Field(
        15.0, gt=0, le=300, description="Idle time before an HTTP stream sends a heartbeat line"
    )
    status_timeout_seconds: float = Field(
        1.0, gt=0, le=30, description="Deadline of each backend health check in GetPlatformStatus"
    )

    def backends(self) -> list[Backend]:
        """Returns the backends in the contract's port order."""
        addresses = {
            "ticketing": self.ticketing_addr,
            "customer": self.customer_addr,
            "incident": self.incident_addr,
            "quality": self.quality_addr,
        }
        return [
            Backend(name, service, addresses[name])
            for name, service in grpc_api.BACKEND_SERVICES.items()
        ]


class GatewayService:
    """The running gateway: channels to the backends, the gRPC edge and the HTTP edge."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.backends = settings.backends()
        self.server: GrpcServer | None = None
        self.http: HttpServer | None = None

    async def start(self) -> None:
        settings = self.settings
        for backend in self.backends:
            backend.open()
        table = routes(self.backends)
        gateway = grpc_api.GatewayServicer(self.backends, settings.status_timeout_seconds)
        bindings = [
            ServiceBinding(
                gateway,
                gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
                grpc_api.SERVICE_NAME,
            )
        ]
        for backend in self.backends:
            served = {path: route for path, route in table.items() if route.backend is backend}
            bindings.append(
                ServiceBinding(
                    grpc_api.ProxyHandler(served), grpc_api.register_proxy, backend.service
                )
            )
        self.server = GrpcServer(
            host=settings.grpc_host, port=settings.grpc_port, bindings=bindings
        )
        descriptor = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]
        self.http = HttpServer(
            HttpApi(
                routes=table,
                local={
                    f"/{grpc_api.SERVICE_NAME}/{method.name}": (
                        method,
                        getattr(gateway, method.name),
                    )
                    for method in descriptor.methods
                },
                timeout=settings.http_timeout_seconds,
                heartbeat=settings.http_stream_heartbeat_seconds,
            ),
            host=settings.grpc_host,
            port=settings.http_port,
            grace=settings.shutdown_grace_seconds,
        )
        await self.server.start()
        await self.http.start()
        await self.server.set_serving(True)
        log.info(
            "gateway serving",
            extra={
                "grpc_port": self.server.port,
                "http_port": self.http.port,
                "backends": {backend.name: backend.address for backend in self.backends},
            },
        )

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_seconds)
        if self.http is not None:
            await self.http.stop()
        for backend in self.backends:
            await backend.close()


async def serve(settings: GatewaySettings) -> None:
    """Runs the gateway until SIGTERM / SIGINT."""
    service = GatewayService(settings)
    await run_until_signalled(service.start, service.stop)


def main() -> None:
    run_process(SERVICE, load_settings(GatewaySettings), serve)


if __name__ == "__main__":
    main()
