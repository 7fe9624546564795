"""Session fixtures shared by every test: a real NATS server with JetStream on a free port, and
the read-model databases (SQLite, PostgreSQL) a test runs on."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_platform.db import make_engine
from sqlalchemy import Engine, text

POSTGRES_URL = os.environ.get(
    "CAREOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server (JetStream, sync_interval always) for the whole test session."""
    yield from started_nats(tmp_path_factory)


@pytest.fixture(scope="session", autouse=True)
async def tasks_left_at_the_end() -> AsyncIterator[None]:
    """Names on stderr the tasks still running on the session's loop when the last test is
    done: the loop's close cancels them, and a server or client a test did not stop has its
    handlers among them (what a crash at the session's end would point to). Garbage is
    collected first, while the loop still runs: a grpc.aio object a test dropped is finalized
    with its loop and grpc's poller alive, not while the loop closes."""
    yield
    gc.collect()
    this = asyncio.current_task()
    left = sorted(repr(task.get_coro()) for task in asyncio.all_tasks() if task is not this)
    if left:
        print(
            f"{len(left)} tasks left running at the session's end:",
            *left,
            sep="\n  ",
            file=sys.__stderr__,
        )


@pytest.fixture
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server of this test's own: for a test whose services must not meet what other
    tests left on the session's log (their streams' history, their durable consumers)."""
    yield from started_nats(tmp_path_factory)


def started_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """Runs a nats-server on a free port in a fresh directory (its log beside its data) while
    the caller's fixture lasts."""
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


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Creates an empty database on the server at `server_url`, yields its URL, drops it.

    Its sessions commit without waiting for the WAL flush: a test database need not survive a
    crash of the server, and the suite's many small transactions wait less."""
    name = f"careops_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server_url)
    try:
        with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        yield server_url.rsplit("/", 1)[0] + "/" + name
        with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres_database(postgres_server_url) as url:
        yield url


# ------------------------------------------------------------ read models on both databases
#
# The one way a test runs on SQLite and on PostgreSQL (docs/operations.md, "Read models on
# both databases"): a test that builds its own engine takes `read_model_url` or
# `read_model_engine` (function scope: a fresh database per test); a module whose tests share
# one running service is marked `pytestmark = pytest.mark.both_databases`, and its service
# fixture passes `service_database_url` as the service's database URL (module scope: the
# module runs twice, each pass on its own NATS server).

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Runs a marked module's tests once per backend (its service fixture takes
    `service_database_url`); unmarked modules keep the service's default SQLite file."""
    if "service_database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("service_database_url", BACKENDS, indirect=True, scope="module")


@pytest.fixture(params=BACKENDS)
def read_model_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A read-model database URL: a SQLite file, then a fresh PostgreSQL database (a test
    using it runs on both, as the services run on either)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'read-models.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url


@pytest.fixture
def read_model_engine(read_model_url: str) -> Iterator[Engine]:
    """An engine (careops_platform.db.make_engine) on `read_model_url`, empty: the test builds
    the schema it needs (migrate, or create the tables)."""
    engine = make_engine(read_model_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def service_database_url(request: pytest.FixtureRequest, postgres_server_url: str) -> Iterator[str]:
    """The database URL of a module's service: "" (the service's own SQLite file under its data
    directory) unless the module is marked both_databases, then also a fresh PostgreSQL one."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield ""
        return
    with fresh_postgres_database(postgres_server_url) as url:
        yield url
