"""Session fixtures shared by every test: a real NATS server with JetStream on a free port."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port

POSTGRES_URL = os.environ.get(
    "CAREOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server (JetStream, sync_interval always) for the whole test session."""
    server = EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=free_port())
    server.start(log_file=Path(server.data_dir) / "nats.log")
    yield server
    server.stop()


@pytest.fixture
async def jetstream_store(nats_server: EmbeddedNats) -> AsyncIterator[JetStreamEventStore]:
    """An event store on the session's NATS server, with its own connection."""
    nc = await connect(nats_server.url, name="careops-tests")
    yield JetStreamEventStore(nc)
    await nc.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server the suite uses (make test installs and starts one if needed)."""
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def read_model_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A read-model database URL: a SQLite file, then a fresh PostgreSQL database (a test
    using it runs on both, as the services run on either)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'read-models.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"careops_test_{uuid.uuid4().hex[:10]}"
    admin_url = postgres_server_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_server_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
