"""The surge detector as a projection: counts and decisions commit with the checkpoint, and each
decision is a due timer that appends its command once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from careops.events.v1.envelope_pb2 import EventBatch
from careops.ticketing.v1 import events_pb2 as tev
from careops.ticketing.v1 import types_pb2 as tt
from careops_eventstore.codec import to_timestamp
from careops_eventstore.projection import apply_batch
from careops_eventstore.timers import DueTimer, due
from careops_platform.db import migrate
from sqlalchemy import Engine, select

from incident import domain as d
from incident.reactions import SURGE_CODEC, SurgeActions, SurgeProjection
from incident.readmodels import surge_incidents

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
STREAM = "CAREOPS_TICKETING"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FAR_LATER = datetime(2099, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    migrate(read_model_engine, MIGRATIONS)
    return read_model_engine


def opened(ticket_id: str, minute: int, *, complaint: bool = True) -> bytes:
    """Returns one ticketing message: a TicketOpened on social, product Wallet."""
    kind = tt.TICKET_TYPE_COMPLAINT if complaint else tt.TICKET_TYPE_FAULT
    event = tev.TicketOpened(
        ticket_id=ticket_id,
        customer_id=f"C-{ticket_id}",
        channel=tt.CHANNEL_SOCIAL,
        type=kind,
        product=" Wallet ",
    )
    batch = EventBatch()
    envelope = batch.events.add(
        event_id=f"E-{ticket_id}",
        type="careops.ticketing.v1.TicketOpened",
        aggregate_id=ticket_id,
        aggregate_type="ticket",
    )
    envelope.occurred_at.CopyFrom(to_timestamp(T0 + timedelta(minutes=minute)))
    envelope.payload.Pack(event)
    return batch.SerializeToString()


def feed(engine: Engine, messages: list[bytes], first: int) -> None:
    projection = SurgeProjection(threshold=3, window=timedelta(minutes=10))
    sequences = list(range(first, first + len(messages)))
    apply_batch(engine, projection, SURGE_CODEC, STREAM, messages, sequences)


def test_the_threshold_decides_one_declaration_per_key_then_links(engine: Engine) -> None:
    feed(engine, [opened("T1", 0), opened("T2", 1, complaint=False), opened("T3", 2)], 1)
    assert due(engine, FAR_LATER) == []
    feed(engine, [opened("T4", 3)], 4)
    declared = due(engine, FAR_LATER)
    assert sorted(t.data["surge_key"] for t in declared) == ["channel:social", "product:wallet"]
    assert {t.kind for t in declared} == {"surge_declare"}
    assert all(t.data["ticket_ids"] == ["T1", "T3", "T4"] for t in declared)
    assert all(t.data["causation_id"] == "E-T4" for t in declared)
    feed(engine, [opened("T5", 4)], 5)
    links = [t for t in due(engine, FAR_LATER) if t.kind == "surge_link"]
    assert sorted(t.data["ticket_ids"] for t in links) == [["T5"], ["T5"]]
    # Each link is due after the declaration it links to: timers fire in stream order.
    assert max(t.due_at for t in declared) < min(t.due_at for t in links)


def test_a_redelivered_ticket_decides_nothing_twice(engine: Engine) -> None:
    messages = [opened(f"T{n}", n) for n in range(1, 4)]
    feed(engine, messages, 1)
    before = due(engine, FAR_LATER)
    feed(engine, messages, 1)
    assert due(engine, FAR_LATER) == before
    with engine.connect() as connection:
        assert len(connection.execute(select(surge_incidents)).all()) == 2


class FakeApp:
    """Records the commands the surge timers append."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, Any, str, str]] = []

    async def execute(
        self, incident_id: str, command: Any, *, command_id: str, actor: str, causation_id: str
    ) -> None:
        self.executed.append((incident_id, command, command_id, causation_id))


async def test_surge_timers_append_their_command_by_the_timer_id_and_go(engine: Engine) -> None:
    feed(engine, [opened(f"T{n}", n) for n in range(1, 5)], 1)
    app = FakeApp()
    others: list[DueTimer] = []

    async def fallback(timer: DueTimer) -> None:
        others.append(timer)

    actions = SurgeActions(app, engine, fallback)  # type: ignore[arg-type]
    for timer in due(engine, FAR_LATER):
        await actions.fire(timer)
    await actions.fire(DueTimer("inc.P1.ack", "I-1", "page_ack", T0, {"page_id": "P1"}))
    kinds = {type(command) for _incident, command, _id, _cause in app.executed}
    assert kinds == {d.DeclareIncident, d.LinkTickets}
    for incident_id, command, command_id, causation_id in app.executed:
        if isinstance(command, d.DeclareIncident):
            assert command_id == f"surge-{incident_id}"
            assert command.source is d.Source.TICKET_SURGE
            assert command.title.endswith("3 complaints in 10 min")
            assert causation_id == "E-T3"
        else:
            assert command_id == f"link-{incident_id}-T4"
    assert [timer.kind for timer in others] == ["page_ack"]
    assert due(engine, FAR_LATER) == []
