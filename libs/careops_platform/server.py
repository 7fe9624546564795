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
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from careops_platform.interceptors import default_interceptors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer, the generated function that registers it and its full proto name."""

    servicer: Any
    register: Callable[[Any, grpc.aio.Server], None]
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
    ) -> None:
        self._server = grpc.aio.server(interceptors=default_interceptors(error_map))
        self._bindings = list(bindings)
        self.health = health.aio.HealthServicer()
        for binding in self._bindings:
            binding.register(binding.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = [binding.full_name for binding in self._bindings]
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self._server,
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
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
