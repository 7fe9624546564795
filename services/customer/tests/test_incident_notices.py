"""Telling customers about an incident, on a real NATS with a real SMTP receiver: incident's
decision (CustomersNotificationDecided on its stream) reaches the named customers and the
owners of the named tickets by e-mail in their language, never an erased customer, once each,
and shows on their 360."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from careops.customer.v1 import customer_pb2 as pb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as t
from careops.events.v1.envelope_pb2 import EventBatch
from careops.incident.v1 import events_pb2 as incident_events
from careops.ticketing.v1 import events_pb2 as ticket_events
from careops_eventstore import StreamSpec
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_published.customer import TIERS
from prometheus_client import REGISTRY

from customer import domain as d
from customer.main import CustomerService
from customer.notices import language_of
from customer.tests.conftest import running_customer
from customer.tests.test_api import append_foreign_event, unique_contacts
from customer.tests.test_domain import NOW, registered
from tests.receivers import MailReceiver, smtp_receiver
from tests.support import eventually

Stub = customer_pb2_grpc.CustomerProfileServiceStub


@pytest.fixture(scope="module")
def mail() -> Iterator[MailReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
async def service(
    data_dir: Path, module_nats: EmbeddedNats, mail: MailReceiver
) -> AsyncIterator[CustomerService]:
    """This module's customer service sends through the local SMTP receiver."""
    async with running_customer(
        data_dir, module_nats.url, smtp_port=mail.port, notify_backoff_seconds=0
    ) as running:
        yield running


async def register(stub: Stub, locale: str) -> tuple[str, str]:
    email, phone = unique_contacts()
    reply = await stub.RegisterCustomer(
        pb.RegisterCustomerRequest(
            profile=t.Profile(name="Lin Wei", email=email, phone=phone, locale=locale)
        )
    )
    return reply.customer.customer_id, email.lower()


def decided(
    notification_id: str, customer_ids: list[str], ticket_ids: tuple[str, ...] = ()
) -> incident_events.CustomersNotificationDecided:
    return incident_events.CustomersNotificationDecided(
        notification_id=notification_id,
        template_id="first_notice",
        statement_version=2,
        decided_by="comms-lead",
        customer_ids=customer_ids,
        ticket_ids=ticket_ids,
        subject="【服务通知】部分用户无法登录",
        body="尊敬的客户：我们正在处理。",
        subject_en="[Service notice] Some customers cannot sign in",
        body_en="Dear customer, we are working on it.",
        templates_version="notices-2026.1",
    )


async def append_decision(
    log_store: JetStreamEventStore,
    incident_id: str,
    event: incident_events.CustomersNotificationDecided,
    expected: int,
) -> int:
    """Appends a decision to the incident's subject as incident would; returns its sequence."""
    batch = EventBatch()
    envelope = batch.events.add(
        event_id=uuid.uuid4().hex,
        type=event.DESCRIPTOR.full_name,
        aggregate_id=incident_id,
        aggregate_type="incident",
    )
    envelope.occurred_at.GetCurrentTime()
    envelope.payload.Pack(event)
    result = await log_store.append(
        stream="CAREOPS_INCIDENT",
        subject=f"careops.incident.incident.{incident_id}",
        batch=batch,
        expected_sequence=expected,
        message_id=uuid.uuid4().hex,
    )
    return int(result.sequence)


def mails_to(mail: MailReceiver, address: str) -> list[EmailMessage]:
    found = []
    for _, recipients, content, _ in mail.messages:
        if address in [r.lower() for r in recipients]:
            found.append(message_from_bytes(content, policy=default))
    return found  # type: ignore[return-value]


async def notified(stub: Stub, customer_id: str) -> list[t.TimelineEntry]:
    view = (await stub.GetCustomer360(pb.GetCustomer360Request(customer_id=customer_id))).view
    return [e for e in view.timeline if e.kind == "incident_notified"]


def sent(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "careops_customer_incident_notices_total", {"outcome": outcome}
    )
    return value or 0.0


def test_the_published_tiers_are_customer_profiles_tiers() -> None:
    assert tuple(tier.value for tier in d.Tier) == TIERS


async def test_affected_customers_are_told_in_their_language_and_the_erased_never(
    stub: Stub, log_store: JetStreamEventStore, mail: MailReceiver, service: CustomerService
) -> None:
    await log_store.ensure_stream(StreamSpec("CAREOPS_INCIDENT", ("careops.incident.>",)))
    await log_store.ensure_stream(StreamSpec("CAREOPS_TICKETING", ("careops.ticketing.>",)))
    chinese, chinese_mail = await register(stub, "zh-CN")
    english, english_mail = await register(stub, "en-GB")
    erased, erased_mail = await register(stub, "zh-CN")
    owner, owner_mail = await register(stub, "zh-CN")
    await stub.EraseCustomer(
        pb.EraseCustomerRequest(customer_id=erased, reason=t.ERASURE_REASON_CUSTOMER_REQUEST)
    )
    ticket_id = f"T-n-{uuid.uuid4().hex[:8]}"
    await append_foreign_event(
        log_store,
        "ticket",
        ticket_id,
        ticket_events.TicketOpened(ticket_id=ticket_id, customer_id=owner),
    )
    erased_before = sent("erased")
    incident_id = f"I-n-{uuid.uuid4().hex[:8]}"
    decision = decided(
        f"{incident_id}-c0", customer_ids=[chinese, english, erased], ticket_ids=(ticket_id,)
    )
    last = await append_decision(log_store, incident_id, decision, 0)

    # The ticket's owner is told last: once it shows, every other one was handled.
    await eventually(lambda: notified(stub, owner), what="the owner told")
    assert mail.wait_for(3) and len(mail.messages) == 3
    (zh,) = mails_to(mail, chinese_mail)
    assert zh["Subject"] == "【服务通知】部分用户无法登录"
    assert "我们正在处理" in zh.get_content()
    (en,) = mails_to(mail, english_mail)
    assert en["Subject"] == "[Service notice] Some customers cannot sign in"
    assert en["Content-Language"] == "en"
    assert len(mails_to(mail, owner_mail)) == 1
    assert mails_to(mail, erased_mail) == []
    assert sent("erased") == erased_before + 1

    for customer_id in (chinese, english, owner):
        (entry,) = await notified(stub, customer_id)  # recorded before the owner's
        assert entry.summary == f"notified about incident {incident_id} by e-mail"
        assert entry.source == "customer"
    assert await notified(stub, erased) == []

    # The same decision again sends nothing; the next one (the English customer only) does.
    last = await append_decision(log_store, incident_id, decision, last)
    follow_up = decided(f"{incident_id}-c1", customer_ids=[english])
    await append_decision(log_store, incident_id, follow_up, last)
    await eventually(lambda: len(mail.messages) >= 4 or None, what="the follow-up mail")

    async def told_twice() -> list[t.TimelineEntry] | None:
        entries = await notified(stub, english)
        return entries if len(entries) >= 2 else None

    assert len(await eventually(told_twice, what="the follow-up on the 360")) == 2
    assert len(mail.messages) == 4
    assert len(mails_to(mail, chinese_mail)) == 1


def test_a_notification_is_recorded_once_and_never_for_an_erased_customer() -> None:
    state = registered()
    told = d.RecordNotification("I-1", "I-1-c0", "first_notice", 2, "email", "zh")
    [event] = d.decide(state, told, now=NOW)
    assert event == d.CustomerNotified("I-1", "I-1-c0", "first_notice", 2, "email", "zh", True)
    state = d.evolve(state, event, NOW)
    assert d.decide(state, told, now=NOW) == []
    failed = d.RecordNotification("I-1", "I-1-c1", "x", 0, "email", "en", "SMTP: 550")
    [event] = d.decide(state, failed, now=NOW)
    assert isinstance(event, d.CustomerNotified) and not event.delivered
    [forgotten] = d.decide(state, d.ForgetCustomer(d.ErasureReason.CUSTOMER_REQUEST), now=NOW)
    erased = d.evolve(state, forgotten, NOW)
    with pytest.raises(d.IllegalTransition):
        d.decide(erased, d.RecordNotification("I-2", "I-2-c0", "x", 0, "email", "zh"), now=NOW)


@pytest.mark.parametrize(
    ("locale", "language"), [("en-GB", "en"), ("EN", "en"), ("zh-CN", "zh"), ("", "zh")]
)
def test_the_language_follows_the_locale(locale: str, language: str) -> None:
    assert language_of(locale) == language
