"""The timer projection keeps a page's delayed contacts (its member's later notification rules)
only while they can still matter: an acknowledged or escalated page's are cancelled, and a
resolved incident's go with its other timers. SQLite and PostgreSQL, events fed one at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from careops.events.v1.envelope_pb2 import EventEnvelope
from careops_eventstore.codec import DecodedEvent, to_timestamp
from careops_eventstore.sqlstate import timers
from sqlalchemy import Engine, select

from incident import domain as d
from incident.projections import CONTACT_TIMER, IncidentTimerProjection

T0 = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
WEBHOOK = d.ContactPoint(d.ContactKind.WEBHOOK, "http://x/alice")
EMAIL = d.ContactPoint(d.ContactKind.EMAIL, "alice@example.test")
PLAN = (d.PlannedContact(WEBHOOK, 0), d.PlannedContact(EMAIL, 120), d.PlannedContact(EMAIL, 600))


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    timers.create(read_model_engine)
    return read_model_engine


def feed(engine: Engine, incident_id: str, *events: Any) -> None:
    projection = IncidentTimerProjection()
    envelope = EventEnvelope(
        aggregate_type="incident", aggregate_id=incident_id, occurred_at=to_timestamp(T0)
    )
    with engine.begin() as connection:
        for position, event in enumerate(events, start=1):
            projection.apply(connection, DecodedEvent(event, envelope), position)


def page(page_id: str) -> d.PageRequested:
    return d.PageRequested(
        page_id=page_id,
        team_id="technical_support",
        member_id="alice",
        step=0,
        round=0,
        contacts=(WEBHOOK,),
        ack_due_at=T0 + timedelta(minutes=5),
        engagement=d.Engagement.RED,
        plan=PLAN,
    )


def contact_timers(engine: Engine) -> list[str]:
    query = select(timers.c.timer_id).where(timers.c.kind == CONTACT_TIMER)
    with engine.connect() as connection:
        return sorted(connection.execute(query).scalars())


def test_an_acknowledged_page_has_no_page_contact_timer_left(engine: Engine) -> None:
    # p1 and p10: a prefix of one page id must not cancel the other's contacts.
    feed(engine, "i_1", page("i_1-p1"), page("i_1-p10"))
    assert len(contact_timers(engine)) == 4
    feed(engine, "i_1", d.PageAcknowledged("i_1-p1", "alice"))
    assert contact_timers(engine) == ["inc.i_1-p10.contact.120", "inc.i_1-p10.contact.600"]


def test_an_escalated_page_has_no_page_contact_timer_left(engine: Engine) -> None:
    feed(engine, "i-2", page("i-2-p0"), page("i-2-p1"))
    feed(engine, "i-2", d.PageEscalated("i-2-p0", "no acknowledgement"))
    assert contact_timers(engine) == ["inc.i-2-p1.contact.120", "inc.i-2-p1.contact.600"]


def test_a_resolved_incident_has_no_page_contact_timer_left(engine: Engine) -> None:
    feed(engine, "i-3", page("i-3-p0"))
    feed(engine, "i-4", page("i-4-p0"))
    feed(engine, "i-3", d.IncidentResolved("fixed"))
    assert contact_timers(engine) == ["inc.i-4-p0.contact.120", "inc.i-4-p0.contact.600"]
