"""Fixtures: the customer service in-process on a real NATS server and a real database."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from careops.customer.v1 import customer_pb2_grpc
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

from customer.main import CustomerService, CustomerSettings
from tests.support import channel_to


def new_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@asynccontextmanager
async def running_customer(
    data_dir: Path, nats_url: str, **overrides: Any
) -> AsyncIterator[CustomerService]:
    """Starts CustomerService on a free port; stops it afterwards."""
    settings = CustomerSettings(
        nats_url=nats_url,
        data_dir=str(data_dir),
        grpc_port=0,
        metrics_port=0,
        shutdown_grace_seconds=0,
        segment_initial_delay_seconds=3600,
        **overrides,
    )
    service = CustomerService(settings)
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
    both_databases; its data directory is scanned for plaintext)."""
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, service_database_url: str) -> Path:
    return tmp_path_factory.mktemp("customer-data")


@pytest.fixture(scope="module")
async def service(
    data_dir: Path, module_nats: EmbeddedNats, service_database_url: str
) -> AsyncIterator[CustomerService]:
    async with running_customer(
        data_dir, module_nats.url, database_url=service_database_url
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def stub(
    service: CustomerService,
) -> AsyncIterator[customer_pb2_grpc.CustomerProfileServiceStub]:
    assert service.server is not None
    async with channel_to(service) as channel:
        yield customer_pb2_grpc.CustomerProfileServiceStub(channel)


@pytest.fixture(scope="module")
async def log_store(module_nats: EmbeddedNats) -> AsyncIterator[JetStreamEventStore]:
    """A separate connection for reading the raw log."""
    nc = await connect(module_nats.url, name="customer-tests")
    yield JetStreamEventStore(nc)
    await nc.close()
