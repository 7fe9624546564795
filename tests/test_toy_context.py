"""docs/adding-a-context.md, followed: a toy sixth context declared here with the skeleton
starts on the real NATS, answers gRPC health and projects its one event into SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from careops.quality.v1 import events_pb2  # the toy borrows an existing message as its payload
from careops_eventstore import EventStore
from careops_eventstore.aggregates import CommandResult
from careops_eventstore.application import ContextApplication, aggregate_kind
from careops_eventstore.codec import DecodedEvent, EventCodec
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.registry import ContextStream, ServiceEntry
from careops_platform.service import EventSourcedService, Subscription, port_setting
from careops_platform.settings import ServiceSettings
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table, insert, select

from tests.support import channel_to

# 1. The registry entry (a real context adds it to careops_platform.registry.SERVICES).
TOY = ContextStream("toy")
ENTRY = ServiceEntry("toy", "toy", __name__, grpc_port=0, metrics_port=0, stream=TOY)
STREAM = TOY.spec()


# 2. The domain: state, events, decide and evolve (pure).
@dataclass(frozen=True)
class NoteWritten:
    agent_id: str
    note: str


@dataclass(frozen=True)
class Note:
    note_id: str
    text: str = ""


def decide(state: Note, text: str, agent_id: str) -> list[NoteWritten]:
    if state.text:
        raise ValueError(f"note {state.note_id} is already written")
    return [NoteWritten(agent_id=agent_id, note=text)]


def evolve(state: Note, event: Any, _at: datetime) -> Note:
    return replace(state, text=event.note) if isinstance(event, NoteWritten) else state


# 3. The application: a codec, an aggregate kind, use cases over ContextApplication.
CODEC = EventCodec({NoteWritten: events_pb2.FollowUpRecorded})
NOTE = aggregate_kind(STREAM, TOY.prefix("note"), "note", initial=Note, evolve=evolve, codec=CODEC)


class ToyApp(ContextApplication[Note]):
    def __init__(self, *, store: EventStore) -> None:
        super().__init__(store=store, stream=STREAM, kind=NOTE)

    async def write(self, note_id: str, text: str, *, command_id: str) -> CommandResult[Note]:
        return await self.run(
            note_id,
            lambda state: decide(state, text, "toy"),
            now=self.clock(),
            command_id=command_id,
        )


# 4. A read model and its projection.
metadata = MetaData()
notes = Table(
    "toy_notes",
    metadata,
    Column("note_id", String(64), primary_key=True),
    Column("text", String(200), nullable=False),
    Column("position", BigInteger, nullable=False),
)


class NoteProjection:
    name = "toy_notes"
    tables: tuple[Table, ...] = (notes,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        if isinstance(event.event, NoteWritten):
            connection.execute(
                insert(notes).values(
                    note_id=event.envelope.aggregate_id, text=event.event.note, position=position
                )
            )


# 5. The migration (a real context keeps these files in services/<context>/migrations).
ENV_PY = """
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
"""
INITIAL = """
import sqlalchemy as sa
from alembic import op
from careops_eventstore import sqlstate

revision = "0001"
down_revision = None


def upgrade() -> None:
    sqlstate.metadata.create_all(op.get_bind())  # checkpoints, parked messages, timers
    op.create_table(
        "toy_notes",
        sa.Column("note_id", sa.String(64), primary_key=True),
        sa.Column("text", sa.String(200), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
"""


# 6. main.py: settings and the service, filling in the hooks.
class ToySettings(ServiceSettings):
    grpc_port: int = port_setting(ENTRY, "grpc_port")
    metrics_port: int = port_setting(ENTRY, "metrics_port")


class ToyService(EventSourcedService[ToySettings, ToyApp]):
    entry = ENTRY

    def application(self, store: EventStore) -> ToyApp:
        return ToyApp(store=store)

    def projections(self, app: ToyApp) -> Sequence[Subscription]:
        return [Subscription(STREAM.name, TOY.filter("note"), CODEC, [NoteProjection()])]


@pytest.fixture
def migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "migrations"
    (directory / "versions").mkdir(parents=True)
    (directory / "env.py").write_text(ENV_PY)
    (directory / "versions" / "0001_initial.py").write_text(INITIAL)
    monkeypatch.setattr(ToyService, "migrations", directory, raising=False)
    return directory


async def test_a_toy_context_starts_answers_health_and_projects_its_event(
    tmp_path: Path, nats_server: EmbeddedNats, migrations: Path
) -> None:
    settings = ToySettings(
        nats_url=nats_server.url,
        data_dir=str(tmp_path / "data"),
        grpc_port=0,
        metrics_port=0,
        shutdown_grace_seconds=0,
    )
    service = ToyService(settings)
    await service.start()
    try:
        assert service.server is not None and service.app is not None
        async with channel_to(service) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        written = await service.app.write("n-1", "hello, sixth context", command_id="c-1")
        assert await service.wait_for("toy_notes", written.sequence, 10)
        with service.engine.connect() as connection:
            rows = connection.execute(select(notes)).mappings().all()
        assert [dict(row) for row in rows] == [
            {"note_id": "n-1", "text": "hello, sixth context", "position": written.sequence}
        ]
    finally:
        await service.stop()
