"""Several projections fed by one consumer (ProjectionGroup) on a real nats-server: one
transaction per batch, each projection its own checkpoint, poison parked per projection, and a
rebuild of one that leaves the others as they are."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, create_engine
from sqlalchemy import select as sql_select

from careops_eventstore import projection
from careops_eventstore.codec import DecodedEvent
from careops_eventstore.jetstream import connect
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_eventstore.projection import ProjectionGroup, read_checkpoint
from careops_eventstore.sqlstate import list_parked
from careops_eventstore.sqlstate import metadata as shared_metadata
from careops_eventstore.tests.test_runner import CODEC, message
from tests.support import eventually

own = MetaData()
NAMES = ("plain", "picky", "old", "new")
tables = {
    name: Table(
        f"group_{name}",
        own,
        Column("position", Integer, primary_key=True),
        Column("note", String(50)),
    )
    for name in NAMES
}


class Words:
    """Writes each note under its own name; "poison" fails for the projection named "picky"
    only (the other projection takes the same message)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def tables(self) -> Sequence[Table]:
        return [tables[self.name]]

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        if event.event.note == "poison" and self.name == "picky":
            raise ValueError("picky refuses poison")
        table = tables[self.name]
        connection.execute(table.insert().values(position=position, note=event.event.note))


def notes_of(engine: Engine, name: str) -> list[str]:
    with engine.connect() as connection:
        table = tables[name]
        query = sql_select(table.c.note).order_by(table.c.position)
        return list(connection.execute(query).scalars())


def checkpoint(engine: Engine, name: str) -> int:
    with engine.connect() as connection:
        return read_checkpoint(connection, name)


@pytest.fixture
async def client(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    nc = await connect(nats_server.url, name="group-test")
    yield nc
    await nc.close()


@dataclass
class Scene:
    """A stream of its own and a read-model database: what a group needs, as its arguments."""

    js: JetStreamContext
    engine: Engine
    subject: str
    settings: dict[str, Any]

    async def publish(self, *notes: str) -> None:
        for note in notes:
            await self.js.publish(
                f"{self.subject}.one", message(note), stream=self.settings["stream"]
            )


@pytest.fixture
async def scene(client: NatsClient, tmp_path: Path) -> AsyncIterator[Scene]:
    stream = f"GROUP_{uuid.uuid4().hex[:8]}"
    subject = f"group.{stream.lower()}"
    js = client.jetstream()
    await js.add_stream(api.StreamConfig(name=stream, subjects=[f"{subject}.>"]))
    engine = create_engine(f"sqlite:///{tmp_path / 'group.db'}")
    shared_metadata.create_all(engine)
    own.create_all(engine)
    settings: dict[str, Any] = {
        "nc": client,
        "engine": engine,
        "codec": CODEC,
        "stream": stream,
        "filter_subject": f"{subject}.>",
    }
    yield Scene(js, engine, subject, settings)
    await js.delete_stream(stream)
    engine.dispose()


async def test_one_consumer_feeds_every_projection_each_with_its_own_checkpoint(
    scene: Scene,
) -> None:
    js, engine, stream = scene.js, scene.engine, scene.settings["stream"]
    group = ProjectionGroup(projections=[Words("plain"), Words("picky")], **scene.settings)
    runners = group.runners()
    await scene.publish("a", "poison", "b")
    await group.start()
    try:
        for runner in runners.values():
            assert await runner.wait_for(3, 10)
        assert notes_of(engine, "plain") == ["a", "poison", "b"]
        assert notes_of(engine, "picky") == ["a", "b"]
        with engine.connect() as connection:
            parked = list_parked(connection, consumers=["plain", "picky"])
        assert [(item.consumer, item.sequence, item.reason) for item in parked] == [
            ("picky", 2, "failed")
        ]
        info = await js.consumers_info(stream)
        assert len(info) == 1, "one consumer for the whole group"

        # Rebuilding one projection replays into it alone, on a consumer of its own (so the
        # replay does not hold the other back); the other keeps its rows once.
        await runners["picky"].rebuild()
        assert runners["picky"].group is not runners["plain"].group
        assert await runners["picky"].wait_for(3, 10)
        assert len(await js.consumers_info(stream)) == 2
        await scene.publish("c")
        for runner in runners.values():
            assert await runner.wait_for(4, 10)
        assert notes_of(engine, "plain") == ["a", "poison", "b", "c"]
        assert notes_of(engine, "picky") == ["a", "b", "c"]
        assert checkpoint(engine, "plain") == checkpoint(engine, "picky") == 4
        statuses = [await runner.status() for runner in runners.values()]
        assert [(s.name, s.position, s.lag) for s in statuses] == [
            ("plain", 4, 0),
            ("picky", 4, 0),
        ]
    finally:
        for runner in runners.values():
            await runner.stop()


async def test_a_group_restarts_from_its_lowest_checkpoint(scene: Scene) -> None:
    """A projection added to a group later (checkpoint 0) catches up from the start while the
    one that had everything skips it as already applied."""
    settings, engine = scene.settings, scene.engine
    await scene.publish("a", "b")
    first = ProjectionGroup(projections=[Words("old")], **settings)
    await first.start()
    assert await first.runners()["old"].wait_for(2, 10)
    await first.stop()
    second = ProjectionGroup(projections=[Words("old"), Words("new")], **settings)
    await second.start()
    try:
        assert await second.runners()["new"].wait_for(2, 10)
        assert notes_of(engine, "old") == notes_of(engine, "new") == ["a", "b"]
    finally:
        await second.stop()


async def test_one_ack_per_batch_acks_every_message_of_it(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer acks all up to a sequence (AckPolicy.ALL): a batch sends one ack, for its
    last message, and the server holds nothing unacknowledged afterwards (a poison message is
    terminated on its own as well)."""
    acks: list[int] = []
    expected: list[int] = []  # per batch, its last message but the poison (21)
    ack, apply_batches = Msg.ack, projection.apply_batches

    async def counted_ack(message: Msg) -> None:
        acks.append(message.metadata.sequence.stream)
        await ack(message)

    def counted_batches(*args: Any, **kwargs: Any) -> Any:
        outcomes = apply_batches(*args, **kwargs)
        events = [sequence for sequence in args[5] if sequence != 21]  # the batch's sequences
        expected.extend(events[-1:])
        return outcomes

    monkeypatch.setattr(Msg, "ack", counted_ack)
    monkeypatch.setattr(projection, "apply_batches", counted_batches)
    notes = [f"n{index}" for index in range(20)]
    await scene.publish(*notes)
    await scene.js.publish(f"{scene.subject}.one", b"not an event batch")
    group = ProjectionGroup(projections=[Words("plain")], **scene.settings)
    await group.start()
    try:
        assert await group.runners()["plain"].wait_for(21, 10)
        assert notes_of(scene.engine, "plain") == notes
        assert acks == expected

        async def all_acknowledged() -> bool:
            info = await scene.js.consumer_info(scene.settings["stream"], group.durable)
            return info.ack_floor.stream_seq == 21 and info.num_ack_pending == 0

        await eventually(all_acknowledged, what="the consumer's ack floor at the last message")
    finally:
        await group.stop()


async def test_a_group_far_behind_catches_up_in_larger_batches_then_returns_to_its_size(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind by a batch or more (a rebuild, a restart), a group fetches up to its catch-up
    size; caught up, a new message comes in a batch of its own size again. Every message is
    applied once, in order."""
    sizes: list[int] = []
    apply_batches = projection.apply_batches

    def sized_batches(*args: Any, **kwargs: Any) -> Any:
        sizes.append(len(args[4]))  # the batch's messages
        return apply_batches(*args, **kwargs)

    monkeypatch.setattr(projection, "apply_batches", sized_batches)
    notes = [f"n{index}" for index in range(60)]
    await scene.publish(*notes)
    group = ProjectionGroup(
        projections=[Words("plain")], batch_size=4, catch_up_batch_size=16, **scene.settings
    )
    await group.start()
    try:
        runner = group.runners()["plain"]
        assert await runner.wait_for(60, 10)
        assert sizes[0] <= 4, "the first batch, before anything says how far behind it is"
        assert max(sizes) > 4, f"catching up, batches grow past the batch size: {sizes}"
        assert max(sizes) <= 16, sizes
        caught_up = len(sizes)
        await scene.publish("last")
        assert await runner.wait_for(61, 10)
        assert sizes[caught_up:] == [1]
        assert notes_of(scene.engine, "plain") == [*notes, "last"]
    finally:
        await group.stop()
