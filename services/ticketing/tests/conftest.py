"""Fixtures: the ticketing service in-process on a real NATS server and a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from tests.support import FakeClock, channel_to, shared_key_store
from ticketing.main import TicketingService, TicketingSettings


@asynccontextmanager
async def running_service(
    data_dir: Path, nats_url: str, *, clock: FakeClock | None = None, **overrides: Any
) -> AsyncIterator[TicketingService]:
    """Starts TicketingService on a free port (on `clock`, when given); stops it afterwards.
    The router is off unless `auto_route=True`: tests that assert on a ticket's assignee or on
    every event of a ticket must not race it (test_routing.py runs it)."""
    overrides.setdefault("auto_route", False)
    # Every instance on one server shares the key store, as replicas do.
    overrides = {**shared_key_store(nats_url, "ticketing"), **overrides}
    settings = TicketingSettings(
        nats_url=nats_url,
        data_dir=str(data_dir),
        grpc_port=0,
        metrics_port=0,
        timer_interval_seconds=0.1,
        shutdown_grace_seconds=0,
        **overrides,
    )
    service = TicketingService(settings, clock=clock) if clock else TicketingService(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture(scope="module")
def module_nats(
    tmp_path_factory: pytest.TempPathFactory, service_database_url: str
) -> Iterator[EmbeddedNats]:
    """A NATS server of this test module's own (of each database pass of a module marked
    both_databases), so streams and consumers start empty."""
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def service(
    tmp_path_factory: pytest.TempPathFactory, module_nats: EmbeddedNats, service_database_url: str
) -> AsyncIterator[TicketingService]:
    data = tmp_path_factory.mktemp("data")
    async with running_service(data, module_nats.url, database_url=service_database_url) as running:
        yield running


@pytest.fixture(scope="module")
async def stub(service: TicketingService) -> AsyncIterator[ticketing_pb2_grpc.TicketingServiceStub]:
    assert service.server is not None
    async with channel_to(service) as channel:
        yield ticketing_pb2_grpc.TicketingServiceStub(channel)
