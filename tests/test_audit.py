"""The audit query (careops_platform.audit) and `careops audit`: who did what, when."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import typer
from careops.events.v1.envelope_pb2 import EventBatch
from careops_cli.audit import parse_time
from careops_eventstore.codec import to_timestamp
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.model import EventStore
from careops_platform.audit import acted_for, audit
from careops_platform.registry import stream

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def batch(actor: str, at: datetime, *types: str, aggregate: str = "t-1") -> EventBatch:
    """Returns one command's events as the log holds them (the payloads do not matter here)."""
    events = EventBatch()
    for event_type in types:
        envelope = events.events.add(
            event_id=uuid.uuid4().hex, type=event_type, actor=actor, command_id="c-" + aggregate
        )
        envelope.aggregate_id, envelope.aggregate_type = aggregate, "ticket"
        envelope.recorded_at.CopyFrom(to_timestamp(at))
    return events


async def append(store: EventStore, context: str, aggregate: str, events: EventBatch) -> None:
    for envelope in events.events:
        envelope.aggregate_id = aggregate
    spec = stream(context).spec()
    await store.ensure_stream(spec)
    subject = f"careops.{context}.ticket.{aggregate}"
    last = await store.read_subject(stream=spec.name, subject=subject)
    await store.append(
        stream=spec.name,
        subject=subject,
        batch=events,
        expected_sequence=last[-1].sequence if last else 0,
        message_id=uuid.uuid4().hex,
    )


async def test_the_audit_filters_by_actor_time_and_service_in_recorded_order() -> None:
    store = InMemoryEventStore()
    await append(store, "ticketing", "t-1", batch("ann", NOON, "x.Opened", "x.Assigned"))
    later = NOON + timedelta(minutes=5)
    await append(store, "incident", "i-1", batch("ann via dispatcher", later, "x.Delivered"))
    await append(store, "ticketing", "t-1", batch("bob", later, "x.Replied"))
    await append(store, "ticketing", "t-0", batch("ann", NOON - timedelta(days=1), "x.Old"))

    found = await audit(store, since=NOON, actor="ann")
    assert [(e.service, e.event_type, e.actor) for e in found] == [
        ("ticketing", "x.Opened", "ann"),
        ("ticketing", "x.Assigned", "ann"),
        ("incident", "x.Delivered", "ann via dispatcher"),
    ]
    assert [e.event_type for e in await audit(store, since=NOON, until=later)] == [
        "x.Opened",
        "x.Assigned",
    ]
    only = await audit(store, since=NOON, actor="ann", service="incident")
    assert [e.aggregate_id for e in only] == ["i-1"]
    assert len(await audit(store, since=NOON - timedelta(days=2))) == 5
    with pytest.raises(ValueError, match="owns no stream"):
        await audit(store, since=NOON, service="gateway")


def test_an_actor_is_matched_as_the_principal_or_what_it_caused() -> None:
    assert acted_for("ann", "ann") and acted_for("ann via sla-timer", "ann")
    assert not acted_for("anna", "ann") and not acted_for("bob via ann", "ann")
    assert acted_for("anyone", "")


def test_times_are_iso_8601_or_an_age() -> None:
    assert parse_time("2h", now=NOON) == NOON - timedelta(hours=2)
    assert parse_time("7d", now=NOON) == NOON - timedelta(days=7)
    assert parse_time("2026-03-02T12:00:00") == NOON
    assert parse_time("2026-03-02T13:00:00+01:00") == NOON
    with pytest.raises(typer.BadParameter):
        parse_time("yesterday")
