"""Customer-profile with ticketing and quality on one log: the 360, tier-driven SLAs, erasure.

All three services run for real (in-process, real NATS, SQLite); they only meet on the log.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from careops.common.v1 import admin_pb2, admin_pb2_grpc
from careops.customer.v1 import customer_pb2 as cpb
from careops.customer.v1 import customer_pb2_grpc
from careops.customer.v1 import types_pb2 as ct
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops.quality.v1 import types_pb2 as qt
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_eventstore.jetstream import JetStreamEventStore
from careops_eventstore.nats_embedded import EmbeddedNats
from customer.main import CustomerService, CustomerSettings
from customer.tests.test_api import files_containing
from google.protobuf.json_format import MessageToDict
from quality.main import QualityService, QualitySettings
from ticketing.main import TicketingService, TicketingSettings

from tests.support import channel_to, eventually

T = TypeVar("T")


def assert_same_kpis(now: qpb.Kpis, before: qpb.Kpis) -> None:
    """Asserts the KPIs are unchanged; on failure, names each figure that moved."""
    new, old = MessageToDict(now), MessageToDict(before)
    moved = {key: (old.get(key), new.get(key)) for key in old.keys() | new.keys()}
    assert now == before, {key: pair for key, pair in moved.items() if pair[0] != pair[1]}


@dataclass
class Platform:
    customer: customer_pb2_grpc.CustomerProfileServiceStub
    ticketing: ticketing_pb2_grpc.TicketingServiceStub
    quality: quality_pb2_grpc.QualityServiceStub
    quality_admin: admin_pb2_grpc.ProjectionAdminServiceStub
    quality_service: QualityService
    ticketing_admin: admin_pb2_grpc.ProjectionAdminServiceStub
    ticketing_service: TicketingService
    customer_service: CustomerService
    data_dir: Path


@pytest.fixture
async def platform(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Platform]:
    hash_key = base64.b64encode(os.urandom(32)).decode()
    common: dict[str, Any] = {
        "nats_url": nats_server.url,
        "grpc_port": 0,
        "metrics_port": 0,
        "shutdown_grace_seconds": 0,
    }
    services: list[Any] = [
        TicketingService(
            TicketingSettings(data_dir=str(tmp_path / "t"), contact_hash_key=hash_key, **common)
        ),
        CustomerService(
            CustomerSettings(
                data_dir=str(tmp_path / "c"),
                contact_hash_key=hash_key,
                population_ttl_seconds=0,
                segment_initial_delay_seconds=3600,
                **common,
            )
        ),
        QualityService(QualitySettings(data_dir=str(tmp_path / "q"), **common)),
    ]
    async with AsyncExitStack() as stack:
        channels = []
        for service in services:
            await service.start()
            stack.push_async_callback(service.stop)
            channel = channel_to(service)
            stack.push_async_callback(channel.close)
            channels.append(channel)
        yield Platform(
            customer=customer_pb2_grpc.CustomerProfileServiceStub(channels[1]),
            ticketing=ticketing_pb2_grpc.TicketingServiceStub(channels[0]),
            quality=quality_pb2_grpc.QualityServiceStub(channels[2]),
            quality_admin=admin_pb2_grpc.ProjectionAdminServiceStub(channels[2]),
            quality_service=services[2],
            ticketing_admin=admin_pb2_grpc.ProjectionAdminServiceStub(channels[0]),
            ticketing_service=services[0],
            customer_service=services[1],
            data_dir=tmp_path,
        )


def first_response_target(ticket: tpb.Ticket) -> float:
    [clock] = [c for c in ticket.sla if c.clock == tt.SLA_CLOCK_FIRST_RESPONSE]
    return clock.target.ToTimedelta().total_seconds()


async def test_360_tiers_and_erasure_across_services(
    platform: Platform, jetstream_store: JetStreamEventStore, nats_server: EmbeddedNats
) -> None:
    token = uuid.uuid4().hex[:10]
    vip_email, vip_phone = f"vip.{token}@example.com", f"+8613{int(token[:8], 16) % 10**9:09d}"
    customers = platform.customer
    for index in range(4):
        small = await customers.RegisterCustomer(
            cpb.RegisterCustomerRequest(
                profile=ct.Profile(name=f"Small {index}", email=f"s{index}.{token}@example.com")
            )
        )
        await customers.RecordPurchase(
            cpb.RecordPurchaseRequest(
                customer_id=small.customer.customer_id,
                order_id=f"S-{index}",
                amount="10.00",
                currency="CNY",
            )
        )
    vip = (
        await customers.RegisterCustomer(
            cpb.RegisterCustomerRequest(
                profile=ct.Profile(name="Big Spender", email=vip_email, phone=vip_phone)
            )
        )
    ).customer
    cid = vip.customer_id
    for index in range(6):
        await customers.RecordPurchase(
            cpb.RecordPurchaseRequest(
                customer_id=cid, order_id=f"V-{index}", amount="5000.00", currency="CNY"
            )
        )

    async def high_value() -> cpb.GetCustomer360Response | None:
        view = await customers.GetCustomer360(cpb.GetCustomer360Request(customer_id=cid))
        top = ct.RfmScores(recency=5, frequency=5, monetary=5)
        customer = view.view.customer
        return (
            view if customer.tier == ct.CUSTOMER_TIER_HIGH_VALUE and customer.rfm == top else None
        )

    await eventually(high_value)  # the top buyer of the population, by every measure

    # Ticketing's own projection of customer events carries the tier to the SLA.
    customer_head = await jetstream_store.last_sequence("CAREOPS_CUSTOMER")
    directory = platform.ticketing_service.runners["customer_directory"]
    assert await directory.wait_for(customer_head, 10)
    tickets = platform.ticketing
    request: dict[str, Any] = {
        "channel": tt.CHANNEL_EMAIL,
        "type": tt.TICKET_TYPE_COMPLAINT,
        "priority": tt.PRIORITY_NORMAL,
        "subject": "Order arrived broken",
    }
    linked = (
        await tickets.OpenTicket(tpb.OpenTicketRequest(contact_email=vip_email.upper(), **request))
    ).ticket
    assert linked.customer_id == cid
    assert linked.tier == tt.CUSTOMER_TIER_HIGH_VALUE
    walk_in = (
        await tickets.OpenTicket(tpb.OpenTicketRequest(customer_id=f"walk-in-{token}", **request))
    ).ticket
    assert walk_in.tier == tt.CUSTOMER_TIER_REGULAR
    assert first_response_target(linked) < first_response_target(walk_in)
    by_phone = (
        await tickets.OpenTicket(
            tpb.OpenTicketRequest(contact_phone=vip_phone, **{**request, "subject": "Still open"})
        )
    ).ticket
    assert by_phone.customer_id == cid

    await tickets.AddReply(
        tpb.AddReplyRequest(ticket_id=linked.ticket_id, author=tt.AUTHOR_AGENT, body="Sorry!")
    )
    await tickets.GrantCompensation(
        tpb.GrantCompensationRequest(
            ticket_id=linked.ticket_id,
            kind=tt.COMPENSATION_KIND_GIFT,
            amount="88.50",
            currency="CNY",
            reason="sorry for the wait, secret-reason",
        )
    )
    resolved = await tickets.ResolveTicket(
        tpb.ResolveTicketRequest(ticket_id=linked.ticket_id, resolution="replaced")
    )
    survey = await platform.quality.SubmitSurvey(
        qpb.SubmitSurveyRequest(
            ticket_id=linked.ticket_id,
            csat=2,
            nps=3,
            comment="slow and I am angry",
            ticketing_min_sequence=resolved.sequence,
        )
    )

    async def complete() -> cpb.GetCustomer360Response | None:
        view = await customers.GetCustomer360(cpb.GetCustomer360Request(customer_id=cid))
        kinds = {entry.kind for entry in view.view.timeline}
        wanted = {"ticket_opened", "ticket_resolved", "survey", "purchase", "segment"}
        wanted.add("compensation_granted")
        return view if wanted <= kinds else None

    view = (await eventually(complete)).view
    assert view.customer.tier == ct.CUSTOMER_TIER_HIGH_VALUE
    assert view.customer.profile.name == "Big Spender"
    assert view.satisfaction.surveys == 1 and view.satisfaction.average_csat == 2
    [answer] = view.satisfaction.history
    assert (answer.ticket_id, answer.csat, answer.nps) == (linked.ticket_id, 2, 3)
    assert [t.ticket_id for t in view.open_tickets] == [by_phone.ticket_id]
    assert view.ticket_count == 2
    [survey_entry] = [e for e in view.timeline if e.kind == "survey"]
    assert survey_entry.source == "quality" and survey_entry.csat == 2
    emotion = qt.Emotion.Name(survey.survey.emotion).removeprefix("EMOTION_").lower()
    assert survey_entry.emotion == emotion == "angry"
    assert "slow and I am angry" not in str(view)  # quality's free text is not copied
    opened = [e for e in view.timeline if e.kind == "ticket_opened"]
    assert {e.channel for e in opened} == {"email"}
    # The customer's grants (issue 12 item 3), without ticketing's free-text reason.
    [grant] = [e for e in view.timeline if e.kind == "compensation_granted"]
    assert grant.summary == "compensation gift 88.50 CNY granted"
    assert grant.ticket_id == linked.ticket_id
    assert "secret-reason" not in str(view)

    # Erasure: KPIs unchanged, the directory forgets the contact, nothing in plaintext.
    positions = {
        "ticketing_min_sequence": await jetstream_store.last_sequence("CAREOPS_TICKETING"),
        "min_sequence": survey.sequence,
        # The session's NATS holds other tests' incidents: the crisis KPIs must have them all.
        "incident_min_sequence": await jetstream_store.last_sequence("CAREOPS_INCIDENT"),
    }
    before = await platform.quality.GetKpis(qpb.GetKpisRequest(**positions))
    erased = await customers.EraseCustomer(
        cpb.EraseCustomerRequest(customer_id=cid, reason=ct.ERASURE_REASON_CUSTOMER_REQUEST)
    )
    after_view = await customers.GetCustomer360(
        cpb.GetCustomer360Request(customer_id=cid, min_sequence=erased.sequence)
    )
    assert after_view.view.customer.forgotten
    assert after_view.view.customer.profile == ct.Profile()
    assert after_view.view.satisfaction.surveys == 1  # non-personal facts stay
    after = await platform.quality.GetKpis(qpb.GetKpisRequest(**positions))
    assert after.kpis == before.kpis and before.kpis.surveys >= 1
    # The log now holds a shredded customer: rebuilt from it, quality's KPIs are still the same.
    listed = await platform.quality_admin.ListProjections(admin_pb2.ListProjectionsRequest())
    for projection in listed.projections:
        await platform.quality_admin.RebuildProjection(
            admin_pb2.RebuildProjectionRequest(name=projection.name, wait=True)
        )
    rebuilt = await platform.quality.GetKpis(qpb.GetKpisRequest(**positions))
    assert rebuilt.kpis == before.kpis
    assert await directory.wait_for(erased.sequence, 10)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await tickets.OpenTicket(tpb.OpenTicketRequest(contact_email=vip_email, **request))
    assert unknown.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    needles = [vip_email.encode(), vip_phone.encode(), b"Big Spender"]
    for stream in ("CAREOPS_CUSTOMER", "CAREOPS_TICKETING", "CAREOPS_QUALITY"):
        for message in await jetstream_store.read_stream(stream=stream, limit=100_000):
            raw = message.batch.SerializeToString()
            assert not any(needle in raw for needle in needles), stream
    assert files_containing(Path(nats_server.data_dir), *needles) == []


# ------------------------------------------------------------------- free text erasure (issue 12)


def conversation_request(ticket_id: str) -> tpb.GetConversationRequest:
    return tpb.GetConversationRequest(ticket_id=ticket_id, page_size=500)


async def write_free_text(
    tickets: ticketing_pb2_grpc.TicketingServiceStub, cid: str, mark: Any
) -> list[str]:
    """Two tickets of customer `cid` with every kind of free text, each a marker from `mark`."""
    opened = await tickets.OpenTicket(
        tpb.OpenTicketRequest(
            customer_id=cid,
            channel=tt.CHANNEL_EMAIL,
            type=tt.TICKET_TYPE_COMPLAINT,
            priority=tt.PRIORITY_NORMAL,
            subject=mark("subject"),
            description=mark("description"),
        )
    )
    complaint = opened.ticket.ticket_id
    author = {"ticket_id": complaint}
    await tickets.AddReply(
        tpb.AddReplyRequest(**author, author=tt.AUTHOR_CUSTOMER, body=mark("customer"))
    )
    await tickets.AddReply(
        tpb.AddReplyRequest(**author, author=tt.AUTHOR_AGENT, body=mark("reply"))
    )
    await tickets.AddReply(
        tpb.AddReplyRequest(
            **author,
            author=tt.AUTHOR_AGENT,
            body=mark("note"),
            visibility=tpb.VISIBILITY_INTERNAL,
        )
    )
    await tickets.RecordComplaintStep(
        tpb.RecordComplaintStepRequest(**author, step=tt.COMPLAINT_STEP_LISTEN, note=mark("listen"))
    )
    await tickets.HoldTicket(
        tpb.HoldTicketRequest(**author, reason=tt.HOLD_REASON_WAITING_CUSTOMER, note=mark("hold"))
    )
    await tickets.ResumeTicket(tpb.ResumeTicketRequest(**author))
    await tickets.EscalateTicket(
        tpb.EscalateTicketRequest(**author, to_team="tier2", reason=mark("escalation"))
    )
    await tickets.GrantCompensation(
        tpb.GrantCompensationRequest(
            **author,
            kind=tt.COMPENSATION_KIND_GIFT,
            amount="20",
            currency="CNY",
            reason=mark("compensation"),
        )
    )
    await tickets.ResolveTicket(tpb.ResolveTicketRequest(**author, resolution=mark("resolution")))
    fault = (
        await tickets.OpenTicket(
            tpb.OpenTicketRequest(
                customer_id=cid,
                channel=tt.CHANNEL_CHAT,
                type=tt.TICKET_TYPE_FAULT,
                priority=tt.PRIORITY_LOW,
                subject=mark("fault"),
            )
        )
    ).ticket.ticket_id
    await tickets.TickChecklistItem(
        tpb.TickChecklistItemRequest(ticket_id=fault, item="record_symptom", note=mark("checklist"))
    )
    await tickets.ResolveTicket(tpb.ResolveTicketRequest(ticket_id=fault))
    await tickets.CloseTicket(tpb.CloseTicketRequest(ticket_id=fault, note=mark("close")))
    return [complaint, fault]


def texts_of(ticket: tpb.Ticket, conversation: tpb.GetConversationResponse) -> str:
    """Every free text the API shows of a ticket."""
    parts = [ticket.subject, ticket.description]
    parts += [c.reason for c in ticket.compensations]
    parts += [s.note for s in ticket.complaint_steps]
    parts += [c.note for c in ticket.checklist]
    parts += [m.subject + m.body for m in conversation.messages]
    return "\n".join(parts)


def facts_of(ticket: tpb.Ticket, conversation: tpb.GetConversationResponse) -> Any:
    """What stays after erasure: states, times, counts, amounts."""
    return (
        ticket.status,
        ticket.created_at,
        ticket.resolved_at,
        ticket.closed_at,
        ticket.agent_replies,
        ticket.customer_replies,
        ticket.escalation_level,
        [(c.amount, c.currency, c.status) for c in ticket.compensations],
        [(s.step, s.at) for s in ticket.complaint_steps],
        [(c.item, c.done) for c in ticket.checklist],
        [(m.kind, m.author, m.visibility, m.at) for m in conversation.messages],
    )


async def test_erasure_shreds_the_customers_ticket_free_text(
    platform: Platform, jetstream_store: JetStreamEventStore, nats_server: EmbeddedNats
) -> None:
    token = uuid.uuid4().hex[:12]
    names = (
        "subject", "description", "customer", "reply", "note", "listen", "hold", "escalation",
        "compensation", "resolution", "fault", "checklist", "close", "survey", "follow-up",
    )  # fmt: skip

    def mark(name: str) -> str:
        return f"{name}-{token}"

    needles = [mark(name).encode() for name in names]
    customer = await platform.customer.RegisterCustomer(
        cpb.RegisterCustomerRequest(
            profile=ct.Profile(name=f"Shred {token}", email=f"shred.{token}@example.com")
        )
    )
    cid = customer.customer.customer_id
    tickets = platform.ticketing
    ids = await write_free_text(tickets, cid, mark)
    head = await jetstream_store.last_sequence("CAREOPS_TICKETING")
    quality = platform.quality
    survey = await quality.SubmitSurvey(
        qpb.SubmitSurveyRequest(
            ticket_id=ids[0], csat=1, comment=mark("survey"), ticketing_min_sequence=head
        )
    )
    followed = await quality.RecordFollowUp(
        qpb.RecordFollowUpRequest(ticket_id=ids[0], agent_id="agent-li", note=mark("follow-up"))
    )
    positions = {
        "ticketing_min_sequence": head,
        "min_sequence": followed.sequence,
        # The session's NATS holds other tests' incidents: the crisis KPIs must have them all.
        "incident_min_sequence": await jetstream_store.last_sequence("CAREOPS_INCIDENT"),
    }
    kpis = await quality.GetKpis(qpb.GetKpisRequest(**positions))
    service = platform.ticketing_service
    for name in ("tickets", "conversation"):
        assert await service.runners[name].wait_for(head, 10)

    async def views() -> list[tuple[tpb.Ticket, tpb.GetConversationResponse]]:
        found = []
        for ticket_id in ids:
            ticket = await tickets.GetTicket(tpb.GetTicketRequest(ticket_id=ticket_id))
            conversation = await tickets.GetConversation(conversation_request(ticket_id))
            found.append((ticket.ticket, conversation))
        return found

    # Positive control: the API and ticketing's read models have every text in clear...
    before = await views()
    shown = "\n".join(texts_of(*view) for view in before)
    assert all(mark(name) in shown for name in names[:-2]), shown
    assert survey.survey.comment == mark("survey")
    assert [a.text for a in survey.survey.answers if a.text] == [mark("survey")]
    assert files_containing(platform.data_dir / "q", mark("survey").encode())
    assert files_containing(platform.data_dir / "q", mark("follow-up").encode())
    listed = await tickets.ListTickets(tpb.ListTicketsRequest(customer_id=cid))
    assert {t.subject for t in listed.tickets} == {mark("subject"), mark("fault")}
    assert files_containing(platform.data_dir / "t", mark("reply").encode())
    assert files_containing(platform.data_dir / "t", mark("subject").encode())
    # ... while the log never had them: sealed for the customer from the first append.
    for stream in ("CAREOPS_TICKETING", "CAREOPS_QUALITY"):
        for message in await jetstream_store.read_stream(stream=stream, limit=100_000):
            raw = message.batch.SerializeToString()
            assert not any(needle in raw for needle in needles), stream
    assert files_containing(Path(nats_server.data_dir), *needles) == []

    erased = await platform.customer.EraseCustomer(
        cpb.EraseCustomerRequest(customer_id=cid, reason=ct.ERASURE_REASON_CUSTOMER_REQUEST)
    )
    assert await service.runners["ticket_text_shredder"].wait_for(erased.sequence, 10)
    assert await platform.quality_service.runners["survey_text_shredder"].wait_for(
        erased.sequence, 10
    )

    def clean() -> bool:
        return files_containing(platform.data_dir, *needles) == []

    await eventually(clean, what="no marker in any data directory")
    assert files_containing(Path(nats_server.data_dir), *needles) == []
    after = await views()
    assert "".join(texts_of(*view) for view in after).strip() == ""
    assert [facts_of(*view) for view in after] == [facts_of(*view) for view in before]
    listed = await tickets.ListTickets(tpb.ListTicketsRequest(customer_id=cid))
    assert sorted(t.ticket_id for t in listed.tickets) == sorted(ids)
    assert {t.subject for t in listed.tickets} == {""}
    erased_survey = (await quality.GetSurvey(qpb.GetSurveyRequest(ticket_id=ids[0]))).survey
    assert erased_survey.comment == "" and {a.text for a in erased_survey.answers} == {""}
    assert erased_survey.csat == 1 and len(erased_survey.answers) == len(survey.survey.answers)
    assert_same_kpis((await quality.GetKpis(qpb.GetKpisRequest(**positions))).kpis, kpis.kpis)

    # Rebuilt from the log after the erasure, the read models still show blanks.
    for name in ("tickets", "conversation"):
        await platform.ticketing_admin.RebuildProjection(
            admin_pb2.RebuildProjectionRequest(name=name, wait=True)
        )
    await platform.quality_admin.RebuildProjection(
        admin_pb2.RebuildProjectionRequest(name="quality_surveys", wait=True)
    )
    assert_same_kpis((await quality.GetKpis(qpb.GetKpisRequest(**positions))).kpis, kpis.kpis)
    rebuilt = await views()
    assert [facts_of(*view) for view in rebuilt] == [facts_of(*view) for view in before]
    assert "".join(texts_of(*view) for view in rebuilt).strip() == ""
    await eventually(clean, what="no marker after the rebuild")
