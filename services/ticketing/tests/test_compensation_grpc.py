"""Compensation within limits over real gRPC and NATS: the caller's role (the verified principal)
sets the limit per ticket; above it a supervisor approves or rejects; all of it on the log."""

from __future__ import annotations

import uuid

import grpc
import pytest
from careops.ticketing.v1 import events_pb2, ticketing_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.identity import Principal

from tests.support import channel_to, read_log
from ticketing.application import CODEC, STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService

Stub = ticketing_pb2_grpc.TicketingServiceStub
# agents_default.yaml: agent-wang works faults.
AGENT = Principal("agent-wang", frozenset({"agent"}), "tests")
SENIOR = Principal("senior-1", frozenset({"senior_agent"}), "tests")
SUPERVISOR = Principal("lead-1", frozenset({"supervisor"}), "tests")
CONNECTOR = Principal("mail-connector", frozenset({"integration"}), "tests")


def key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


def grant(ticket_id: str, amount: str = "2500", **overrides: object) -> pb.GrantCompensationRequest:
    fields: dict[str, object] = {
        "ticket_id": ticket_id,
        "kind": t.COMPENSATION_KIND_REFUND,
        "amount": amount,
        "currency": "CNY",
        "reason": "router died twice",
    }
    fields.update(overrides)
    return pb.GrantCompensationRequest(**fields)  # type: ignore[arg-type]


async def fault_ticket(service: TicketingService) -> str:
    """Opens a fault ticket assigned to agent-wang (as the admin test principal)."""
    async with channel_to(service) as channel:
        stub = Stub(channel)
        opened = await stub.OpenTicket(
            pb.OpenTicketRequest(
                customer_id="C-comp",
                channel=t.CHANNEL_EMAIL,
                type=t.TICKET_TYPE_FAULT,
                priority=t.PRIORITY_NORMAL,
                subject="Router dead",
            ),
            metadata=key(),
        )
        ticket_id = opened.ticket.ticket_id
        await stub.AssignTicket(
            pb.AssignTicketRequest(ticket_id=ticket_id, agent_id=AGENT.subject), metadata=key()
        )
    return ticket_id


async def as_(service: TicketingService, who: Principal, method: str, request: object) -> object:
    async with channel_to(service, who) as channel:
        return await getattr(Stub(channel), method)(request, metadata=key())


async def logged_events(nats: EmbeddedNats, ticket_id: str) -> list[tuple[str, object]]:
    """Every event of the ticket as stored on the stream (actor, decoded payload)."""
    messages = await read_log(nats.url, STREAM.name, f"{SUBJECT_PREFIX}.{ticket_id}")
    return [
        (envelope.actor, CODEC.decode(envelope))
        for message in messages
        for envelope in message.batch.events
    ]


async def test_2500_by_an_agent_waits_and_by_a_supervisor_is_granted_both_on_the_log(
    service: TicketingService, module_nats: EmbeddedNats
) -> None:
    ticket_id = await fault_ticket(service)

    by_agent = await as_(service, AGENT, "GrantCompensation", grant(ticket_id))
    assert isinstance(by_agent, pb.GrantCompensationResponse)
    assert by_agent.compensation.status == t.COMPENSATION_STATUS_PENDING
    assert by_agent.compensation.requested_by == AGENT.subject

    by_supervisor = await as_(service, SUPERVISOR, "GrantCompensation", grant(ticket_id))
    assert isinstance(by_supervisor, pb.GrantCompensationResponse)
    assert by_supervisor.compensation.status == t.COMPENSATION_STATUS_GRANTED
    assert by_supervisor.compensation.decided_by == SUPERVISOR.subject

    events = await logged_events(module_nats, ticket_id)
    compensations = [(actor, e) for actor, e in events if type(e).__name__.startswith("Comp")]
    assert [(actor, type(e).__name__) for actor, e in compensations] == [
        (AGENT.subject, "CompensationRequested"),
        (SUPERVISOR.subject, "CompensationGranted"),
    ]
    requested, granted = (e for _actor, e in compensations)
    assert (requested.amount, requested.currency, requested.limit) == ("2500", "CNY", "2000")  # type: ignore[attr-defined]
    assert (granted.amount, granted.granted_by, granted.limit) == ("2500", "lead-1", "20000")  # type: ignore[attr-defined]
    # The raw bytes on the stream are the protobuf event, not a summary.
    raw = await read_log(module_nats.url, STREAM.name, f"{SUBJECT_PREFIX}.{ticket_id}")
    payloads = [envelope.payload.value for message in raw for envelope in message.batch.events]
    assert any(
        events_pb2.CompensationRequested.FromString(p).requested_by == "agent-wang"
        for p in payloads
        if b"agent-wang" in p and b"2500" in p
    )


async def test_a_supervisor_approves_within_their_limit_and_listing_shows_it(
    service: TicketingService,
) -> None:
    ticket_id = await fault_ticket(service)
    pending = await as_(service, AGENT, "GrantCompensation", grant(ticket_id, "3000"))
    assert isinstance(pending, pb.GrantCompensationResponse)
    compensation_id = pending.compensation.compensation_id

    approved = await as_(
        service,
        SUPERVISOR,
        "ApproveCompensation",
        pb.ApproveCompensationRequest(
            ticket_id=ticket_id, compensation_id=compensation_id, reason="loyal customer"
        ),
    )
    assert isinstance(approved, pb.ApproveCompensationResponse)
    assert approved.compensation.status == t.COMPENSATION_STATUS_GRANTED
    assert approved.compensation.decided_by == SUPERVISOR.subject
    assert approved.compensation.requested_by == AGENT.subject

    listed = await as_(
        service,
        AGENT,
        "ListCompensations",
        pb.ListCompensationsRequest(ticket_id=ticket_id, status=t.COMPENSATION_STATUS_GRANTED),
    )
    assert isinstance(listed, pb.ListCompensationsResponse)
    assert [c.compensation_id for c in listed.compensations] == [compensation_id]

    # Approving it again is an illegal transition, and so is rejecting it now.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await as_(
            service,
            SUPERVISOR,
            "RejectCompensation",
            pb.RejectCompensationRequest(
                ticket_id=ticket_id, compensation_id=compensation_id, reason="no"
            ),
        )
    assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_the_limit_is_cumulative_per_ticket(service: TicketingService) -> None:
    ticket_id = await fault_ticket(service)
    first = await as_(service, AGENT, "GrantCompensation", grant(ticket_id, "1500"))
    second = await as_(service, AGENT, "GrantCompensation", grant(ticket_id, "500"))
    third = await as_(service, AGENT, "GrantCompensation", grant(ticket_id, "0.01"))
    statuses = [r.compensation.status for r in (first, second, third)]  # type: ignore[attr-defined]
    assert statuses == [
        t.COMPENSATION_STATUS_GRANTED,
        t.COMPENSATION_STATUS_GRANTED,
        t.COMPENSATION_STATUS_PENDING,
    ]
    # Another currency has its own total.
    usd = await as_(service, AGENT, "GrantCompensation", grant(ticket_id, "10", currency="USD"))
    assert usd.compensation.status == t.COMPENSATION_STATUS_GRANTED  # type: ignore[attr-defined]


async def test_rejection_needs_a_reason_and_is_recorded(
    service: TicketingService, module_nats: EmbeddedNats
) -> None:
    ticket_id = await fault_ticket(service)
    pending = await as_(service, AGENT, "GrantCompensation", grant(ticket_id, "9000"))
    compensation_id = pending.compensation.compensation_id  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await as_(
            service,
            SUPERVISOR,
            "RejectCompensation",
            pb.RejectCompensationRequest(ticket_id=ticket_id, compensation_id=compensation_id),
        )
    assert missing.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    rejected = await as_(
        service,
        SUPERVISOR,
        "RejectCompensation",
        pb.RejectCompensationRequest(
            ticket_id=ticket_id, compensation_id=compensation_id, reason="out of policy"
        ),
    )
    assert rejected.compensation.status == t.COMPENSATION_STATUS_REJECTED  # type: ignore[attr-defined]
    events = await logged_events(module_nats, ticket_id)
    assert (SUPERVISOR.subject, "CompensationRejected") in [
        (actor, type(e).__name__) for actor, e in events
    ]


async def test_refusals_map_to_the_right_status(service: TicketingService) -> None:
    ticket_id = await fault_ticket(service)
    cases: list[tuple[Principal, str, object, grpc.StatusCode]] = [
        (AGENT, "GrantCompensation", grant(ticket_id, "-5"), grpc.StatusCode.INVALID_ARGUMENT),
        (AGENT, "GrantCompensation", grant(ticket_id, "1.999"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            AGENT,
            "GrantCompensation",
            grant(ticket_id, currency="cny"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (AGENT, "GrantCompensation", grant(ticket_id, kind=0), grpc.StatusCode.INVALID_ARGUMENT),
        (AGENT, "GrantCompensation", grant(ticket_id, reason=""), grpc.StatusCode.INVALID_ARGUMENT),
        (AGENT, "GrantCompensation", grant("T-nope"), grpc.StatusCode.NOT_FOUND),
        # The permission table: integration never grants; agents never approve.
        (CONNECTOR, "GrantCompensation", grant(ticket_id), grpc.StatusCode.PERMISSION_DENIED),
        (CONNECTOR, "GrantCompensation", grant("T-nope"), grpc.StatusCode.NOT_FOUND),
        (
            AGENT,
            "ApproveCompensation",
            pb.ApproveCompensationRequest(ticket_id=ticket_id, compensation_id="C-x"),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            SUPERVISOR,
            "ApproveCompensation",
            pb.ApproveCompensationRequest(ticket_id=ticket_id, compensation_id="C-missing"),
            grpc.StatusCode.NOT_FOUND,
        ),
    ]
    for who, method, request, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await as_(service, who, method, request)
        assert refused.value.code() is code, (method, request)


async def test_a_supervisor_cannot_approve_beyond_their_own_limit(
    service: TicketingService,
) -> None:
    ticket_id = await fault_ticket(service)
    pending = await as_(service, AGENT, "GrantCompensation", grant(ticket_id, "25000"))
    compensation_id = pending.compensation.compensation_id  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await as_(
            service,
            SUPERVISOR,
            "ApproveCompensation",
            pb.ApproveCompensationRequest(ticket_id=ticket_id, compensation_id=compensation_id),
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "20000" in (refused.value.details() or "")


async def test_an_agent_compensates_only_on_their_own_tickets(service: TicketingService) -> None:
    ticket_id = await fault_ticket(service)
    other = Principal("agent-li", frozenset({"agent"}), "tests")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await as_(service, other, "GrantCompensation", grant(ticket_id, "10"))
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
