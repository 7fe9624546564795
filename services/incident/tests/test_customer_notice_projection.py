"""The incident's view of customer-profile's notices (CustomerNotified, read as the published
view): one count per customer and notification, its last outcome, per channel. Real SQLite and
PostgreSQL, events fed one at a time."""

from __future__ import annotations

import pytest
from careops.events.v1.envelope_pb2 import EventEnvelope
from careops_eventstore.codec import DecodedEvent
from careops_published import customer as cu
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from incident import readmodels
from incident.projections import CustomerNoticeProjection


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    readmodels.customer_notices.create(read_model_engine)
    return read_model_engine


def told(incident_id: str, notification: str, channel: str, delivered: bool) -> cu.CustomerNotified:
    return cu.CustomerNotified(
        incident_id, notification, "first_notice", 1, channel, "zh", delivered
    )


def feed(engine: Engine, *events: tuple[str, object]) -> None:
    projection = CustomerNoticeProjection()
    with engine.begin() as connection:
        for position, (customer_id, event) in enumerate(events, start=1):
            envelope = EventEnvelope(aggregate_type="customer", aggregate_id=customer_id)
            projection.apply(connection, DecodedEvent(event, envelope), position)


def summary(engine: Engine, incident_id: str) -> list[tuple[str, int, int]]:
    with Session(engine) as session:
        rows = readmodels.notice_deliveries(session=session, incident_id=incident_id)
    return [(row.channel, row.notified, row.failed) for row in rows]


def test_each_customer_counts_once_per_notification_with_its_last_outcome(engine: Engine) -> None:
    feed(
        engine,
        ("C-1", told("I-1", "I-1-c0", "email", True)),
        ("C-1", told("I-1", "I-1-c0", "email", True)),  # redelivered
        ("C-2", told("I-1", "I-1-c0", "email", False)),
        ("C-3", told("I-1", "I-1-c0", "email", False)),
        ("C-3", told("I-1", "I-1-c0", "email", True)),  # told after all
        ("C-1", told("I-1", "I-1-c1", "sms", False)),  # a second notice, another channel
        ("C-9", told("I-2", "I-2-c0", "email", True)),  # another incident
        ("C-9", cu.CustomerForgotten("customer_request")),  # not a notice: ignored
    )
    assert summary(engine, "I-1") == [("email", 2, 1), ("sms", 0, 1)]
    assert summary(engine, "I-2") == [("email", 1, 0)]
    assert summary(engine, "I-3") == []
