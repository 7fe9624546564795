"""Ticketing's application layer through its composition root, on the in-memory store (no NATS)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.timers import DueTimer

from tests.in_memory import logged, types_of
from tests.support import FakeClock
from ticketing import domain
from ticketing.application import CODEC, STREAM, SUBJECT_PREFIX, TicketingApp
from ticketing.main import TicketingService, TicketingSettings

OPEN = domain.OpenTicket(
    ticket_id="t-1",
    customer_id="c-1",
    channel=domain.Channel.EMAIL,
    type=domain.TicketType.FAULT,
    priority=domain.Priority.HIGH,
    subject="Router down",
)


async def bootstrapped(tmp_path: Path, clock: FakeClock) -> tuple[TicketingApp, InMemoryEventStore]:
    """Returns the application the service would run, over a fresh in-memory store."""
    service = TicketingService(TicketingSettings(data_dir=str(tmp_path)), clock=clock)
    store = InMemoryEventStore()
    return await service.bootstrap(store), store


async def test_open_assign_reply_appends_one_message_per_command(tmp_path: Path) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    opened = await app.execute("t-1", OPEN, command_id="cmd-open", actor="agent-7")
    clock.advance(60)
    await app.execute("t-1", domain.AssignTicket("a-1"), command_id="cmd-assign")
    clock.advance(60)
    reply = domain.AddReply(domain.Author.AGENT, "a-1", "We are on it")
    replied = await app.execute("t-1", reply, command_id="cmd-reply", actor="a-1")

    # Revision 1 of the SLA policy, seeded at the start, came first (docs/policies.md);
    # `logged` leaves the policies' revisions out.
    assert opened.sequence == 2
    events = await logged(store, STREAM.name, CODEC)
    assert types_of(events) == [
        "careops.ticketing.v1.TicketOpened",
        "careops.ticketing.v1.TicketAssigned",
        "careops.ticketing.v1.ReplyAdded",
    ]
    assert [item.sequence for item in events] == [
        opened.sequence,
        opened.sequence + 1,
        replied.sequence,
    ]
    assert {item.subject for item in events} == {f"{SUBJECT_PREFIX}.t-1"}
    first = events[0].envelope
    assert (first.command_id, first.actor, first.aggregate_type) == (
        "cmd-open",
        "agent-7",
        "ticket",
    )
    assert first.policy_versions["sla_policy"] == app.policy.version
    assert first.occurred_at.ToDatetime().replace(tzinfo=clock.now.tzinfo) == clock.now - timedelta(
        seconds=120
    )
    assert isinstance(events[0].event, domain.TicketOpened)
    assert events[0].event.priority is domain.Priority.HIGH
    assert replied.state.assignee_id == "a-1"
    assert replied.state.first_responded_at == clock.now


async def test_a_command_id_seen_before_replays_instead_of_appending(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path, FakeClock())
    first = await app.execute("t-1", OPEN, command_id="cmd-open")
    again = await app.execute("t-1", OPEN, command_id="cmd-open")
    assert again.replayed and again.sequence == first.sequence and not again.events
    assert await store.last_sequence(STREAM.name) == first.sequence


async def test_an_illegal_transition_appends_nothing(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path, FakeClock())
    seeded = await store.last_sequence(STREAM.name)  # the SLA policy's revision 1
    with pytest.raises(domain.TicketError):
        await app.execute("t-9", domain.AssignTicket("a-1"), command_id="cmd-assign")
    assert await store.last_sequence(STREAM.name) == seeded


async def test_a_due_sla_timer_is_appended_once_under_its_timer_id(tmp_path: Path) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    opened = await app.execute("t-1", OPEN, command_id="cmd-open")
    clock.advance(timedelta(days=30))
    timer = DueTimer(
        timer_id="timer-1",
        aggregate_id="t-1",
        kind="sla",
        due_at=clock.now,
        data={"clock": "first_response", "kind": "breach"},
    )
    await app.fire_timer(timer)
    await app.fire_timer(timer)
    fired = [e for e in await logged(store, STREAM.name, CODEC) if e.sequence > opened.sequence]
    # One message (every clock overdue by now breaches at once), appended once.
    assert await store.last_sequence(STREAM.name) == opened.sequence + 1
    assert {item.envelope.type for item in fired} == {"careops.ticketing.v1.SlaBreached"}
    assert {item.event.clock for item in fired} == set(domain.SlaClock)
    assert {(item.envelope.command_id, item.envelope.actor) for item in fired} == {
        ("timer-1", "sla-timer")
    }
