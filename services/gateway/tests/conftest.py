"""Fixtures: the gateway in-process in front of real ticketing and incident services (their own
test fixtures, here on the session's NATS); customer-profile and quality-scoring are not
running (their ports are closed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from incident.main import IncidentService
from incident.tests.conftest import incident_service, receivers
from ticketing.main import TicketingService
from ticketing.tests.conftest import service

from gateway.main import GatewayService, GatewaySettings
from gateway.tests.issuer import authorized_channel, shared_issuer
from tests.support import channel_to, shared_internal_key

# The services' own fixtures, reused: ticketing's `service`, incident's `incident_service` (with
# its local webhook and SMTP receivers).
__all__ = ["incident_service", "receivers", "service"]


def address(service: TicketingService | IncidentService | GatewayService) -> str:
    assert service.server is not None
    return f"127.0.0.1:{service.server.port}"


@asynccontextmanager
async def running_gateway(
    overrides: dict[str, Any] | None = None, **addresses: str
) -> AsyncIterator[GatewayService]:
    """Starts the gateway on free ports in front of `addresses` (unset: a closed port), with
    `overrides` of its settings; it trusts the shared test issuer unless they say otherwise."""
    settings: dict[str, Any] = shared_issuer().settings()
    settings |= {
        f"{name}_addr": addresses.get(name, f"127.0.0.1:{free_port()}")
        for name in ("ticketing", "customer", "incident", "quality")
    }
    settings.update(overrides or {})
    gateway = GatewayService(
        GatewaySettings(
            grpc_port=0, http_port=0, metrics_port=0, shutdown_grace_seconds=0, **settings
        )
    )
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


def authorization(token: str | None = None) -> dict[str, str]:
    """Returns the HTTP header presenting `token` (default: the shared issuer's admin)."""
    return {"Authorization": f"Bearer {token or shared_issuer().token()}"}


@pytest.fixture(scope="module", autouse=True)
def internal_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One internal key pair for the gateway and the services behind it (their data dirs
    differ), set before any of them starts."""
    with shared_internal_key(tmp_path_factory.mktemp("internal-key")) as signing:
        yield signing


@pytest.fixture(scope="module")
def module_nats(nats_server: EmbeddedNats) -> EmbeddedNats:
    """Ticketing's fixtures on the session's NATS."""
    return nats_server


@pytest.fixture(scope="module")
def incident_nats(nats_server: EmbeddedNats) -> EmbeddedNats:
    """Incident's fixtures on the session's NATS."""
    return nats_server


@pytest.fixture(scope="module")
def incident_clock() -> None:
    """The real clock. With a FakeClock no escalation traffic flows, and the gateway's stop
    then waits (aiohttp's 60 s shutdown timeout) for an HTTP alert stream whose client has
    gone: a gateway defect, reported, not this suite's to fix."""
    return None


@pytest.fixture(scope="module")
def ticketing(service: TicketingService) -> TicketingService:
    return service


@pytest.fixture(scope="module")
def incident(incident_service: IncidentService) -> IncidentService:
    return incident_service


@pytest.fixture(scope="module")
async def gateway(
    ticketing: TicketingService, incident: IncidentService
) -> AsyncIterator[GatewayService]:
    async with running_gateway(ticketing=address(ticketing), incident=address(incident)) as gw:
        yield gw


@pytest.fixture(scope="module")
async def gateway_channel(gateway: GatewayService) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_channel(address(gateway)) as channel:
        yield channel


@pytest.fixture(scope="module")
async def ticketing_channel(ticketing: TicketingService) -> AsyncIterator[grpc.aio.Channel]:
    async with channel_to(ticketing) as channel:
        yield channel


@pytest.fixture(scope="module")
async def http(gateway: GatewayService) -> AsyncIterator[aiohttp.ClientSession]:
    assert gateway.http is not None
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{gateway.http.port}", headers=authorization()
    ) as session:
        yield session
