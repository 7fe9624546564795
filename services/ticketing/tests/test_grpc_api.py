"""TicketingService over real gRPC, a real NATS JetStream and SQLite."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.model import EXPECTED_SUBJECT_SEQ_HEADER
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from tests.support import channel_to, open_request
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService

# The module's service runs on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases

Stub = ticketing_pb2_grpc.TicketingServiceStub


def key(value: str | None = None) -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", value or uuid.uuid4().hex),)


async def last_sequence(service: TicketingService) -> int:
    assert service.store is not None
    return await service.store.last_sequence(STREAM.name)


async def test_health_is_serving_and_reflection_lists_the_service(
    service: TicketingService,
) -> None:
    assert service.server is not None
    async with channel_to(service) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "careops.ticketing.v1.TicketingService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [r async for r in reflection.ServerReflectionInfo(iter([request]))]
        names = {s.name for s in responses[0].list_services_response.service}
    assert "careops.ticketing.v1.TicketingService" in names
    assert "careops.common.v1.ProjectionAdminService" in names


async def test_open_returns_id_and_sequence_and_get_shows_it_at_once(stub: Stub) -> None:
    opened = await stub.OpenTicket(open_request(), metadata=key())
    assert opened.ticket.ticket_id.startswith("T-")
    assert opened.sequence > 0
    assert opened.ticket.status == t.TICKET_STATUS_OPEN
    got = await stub.GetTicket(pb.GetTicketRequest(ticket_id=opened.ticket.ticket_id))
    assert got.ticket.subject == "Printer shows E42"
    assert got.ticket.version == opened.sequence
    clocks = {clock.clock: clock for clock in got.ticket.sla}
    assert clocks[t.SLA_CLOCK_FIRST_RESPONSE].running
    assert clocks[t.SLA_CLOCK_RESOLUTION].HasField("due_at")
    assert got.ticket.sla_policy_version


async def test_full_lifecycle_and_list_filters(stub: Stub) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    opened = await stub.OpenTicket(open_request(customer_id=customer), metadata=key())
    ticket_id = opened.ticket.ticket_id
    steps = [
        (
            "AssignTicket",
            pb.AssignTicketRequest(ticket_id=ticket_id, agent_id="agent-wang"),
            t.TICKET_STATUS_ASSIGNED,
        ),
        (
            "AddReply",
            pb.AddReplyRequest(ticket_id=ticket_id, author=t.AUTHOR_AGENT, body="Hi"),
            t.TICKET_STATUS_IN_PROGRESS,
        ),
        (
            "HoldTicket",
            pb.HoldTicketRequest(ticket_id=ticket_id, reason=t.HOLD_REASON_WAITING_CUSTOMER),
            t.TICKET_STATUS_ON_HOLD,
        ),
        (
            "AddReply",
            pb.AddReplyRequest(
                ticket_id=ticket_id, author=t.AUTHOR_CUSTOMER, body="Here are the logs"
            ),
            t.TICKET_STATUS_IN_PROGRESS,
        ),
        (
            "ChangePriority",
            pb.ChangePriorityRequest(ticket_id=ticket_id, priority=t.PRIORITY_URGENT),
            t.TICKET_STATUS_IN_PROGRESS,
        ),
        (
            "EscalateTicket",
            pb.EscalateTicketRequest(ticket_id=ticket_id, reason="needs tier 2"),
            t.TICKET_STATUS_IN_PROGRESS,
        ),
        (
            "ResolveTicket",
            pb.ResolveTicketRequest(ticket_id=ticket_id, resolution="firmware"),
            t.TICKET_STATUS_RESOLVED,
        ),
        (
            "ReopenTicket",
            pb.ReopenTicketRequest(ticket_id=ticket_id, reason="again"),
            t.TICKET_STATUS_IN_PROGRESS,
        ),
        ("ResolveTicket", pb.ResolveTicketRequest(ticket_id=ticket_id), t.TICKET_STATUS_RESOLVED),
        ("CloseTicket", pb.CloseTicketRequest(ticket_id=ticket_id), t.TICKET_STATUS_CLOSED),
    ]
    sequence = opened.sequence
    for method, request, status in steps:
        response = await getattr(stub, method)(request, metadata=key())
        assert response.ticket.status == status, method
        assert response.sequence > sequence
        sequence = response.sequence
    final = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id))).ticket
    assert final.priority == t.PRIORITY_URGENT
    assert final.escalation_level == 1
    assert final.reopen_count == 1
    listed = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id=customer, min_sequence=sequence)
    )
    assert [item.ticket_id for item in listed.tickets] == [ticket_id]
    assert listed.tickets[0].status == t.TICKET_STATUS_CLOSED
    assert listed.tickets[0].assignee_id == "agent-wang"
    assert listed.tickets[0].version == sequence


async def test_list_pages_newest_first_with_filters(stub: Stub) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    ids = []
    last = 0
    for index in range(5):
        priority = t.PRIORITY_LOW if index % 2 else t.PRIORITY_HIGH
        opened = await stub.OpenTicket(
            open_request(customer_id=customer, priority=priority, subject=f"s{index}"),
            metadata=key(),
        )
        ids.append(opened.ticket.ticket_id)
        last = opened.sequence
    first = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id=customer, page_size=2, min_sequence=last)
    )
    second = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id=customer, page_size=2, page_token=first.next_page_token)
    )
    third = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id=customer, page_size=2, page_token=second.next_page_token)
    )
    paged = [item.ticket_id for page in (first, second, third) for item in page.tickets]
    assert paged == list(reversed(ids))
    assert third.next_page_token == ""
    low = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id=customer, priority=t.PRIORITY_LOW)
    )
    assert [item.ticket_id for item in low.tickets] == [ids[3], ids[1]]


async def test_same_idempotency_key_yields_one_event_and_the_same_response(
    stub: Stub, service: TicketingService
) -> None:
    same = key("open-once-" + uuid.uuid4().hex)
    first = await stub.OpenTicket(open_request(), metadata=same)
    after_first = await last_sequence(service)
    second = await stub.OpenTicket(open_request(), metadata=same)
    assert second == first
    assert await last_sequence(service) == after_first
    reply_key = key()
    request = pb.AddReplyRequest(
        ticket_id=first.ticket.ticket_id, author=t.AUTHOR_AGENT, body="on it"
    )
    replied = await stub.AddReply(request, metadata=reply_key)
    # A different command in between must not change what the retry answers.
    await stub.EscalateTicket(
        pb.EscalateTicketRequest(ticket_id=first.ticket.ticket_id, reason="tier 2"),
        metadata=key(),
    )
    again = await stub.AddReply(request, metadata=reply_key)
    assert again == replied
    ticket = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=first.ticket.ticket_id))).ticket
    assert ticket.agent_replies == 1


async def test_concurrent_commands_win_or_abort_and_never_share_an_expected_sequence(
    stub: Stub, service: TicketingService
) -> None:
    opened = await stub.OpenTicket(open_request(), metadata=key())
    ticket_id = opened.ticket.ticket_id

    async def reply(index: int) -> grpc.StatusCode:
        try:
            await stub.AddReply(
                pb.AddReplyRequest(ticket_id=ticket_id, author=t.AUTHOR_CUSTOMER, body=f"m{index}"),
                metadata=key(),
            )
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            return exc.code()

    codes = await asyncio.gather(*(reply(i) for i in range(20)))
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}
    assert service.store is not None
    messages = await service.store.read_subject(
        stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{ticket_id}"
    )
    assert len(messages) == 1 + codes.count(grpc.StatusCode.OK)
    expected = [int(m.headers[EXPECTED_SUBJECT_SEQ_HEADER]) for m in messages]
    assert expected == [0] + [m.sequence for m in messages[:-1]]
    ticket = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id))).ticket
    assert ticket.customer_replies == codes.count(grpc.StatusCode.OK)


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (open_request(subject=""), "subject"),
        (open_request(subject="   "), "subject"),
        (open_request(channel=t.CHANNEL_UNSPECIFIED), "channel"),
        (open_request(priority=t.PRIORITY_UNSPECIFIED), "priority"),
        (open_request(customer_id=""), "customer_id"),
        (open_request(subject="x" * 201), "subject"),
    ],
)
async def test_invalid_open_is_rejected_with_field_violations_and_appends_nothing(
    stub: Stub, service: TicketingService, request_: pb.OpenTicketRequest, field: str
) -> None:
    before = await last_sequence(service)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.OpenTicket(request_, metadata=key())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(caught.value)
    assert field in (caught.value.details() or "")
    assert await last_sequence(service) == before


async def test_illegal_transitions_and_unknown_ids_get_clear_statuses(
    stub: Stub, service: TicketingService
) -> None:
    opened = await stub.OpenTicket(open_request(), metadata=key())
    ticket_id = opened.ticket.ticket_id
    await stub.ResolveTicket(pb.ResolveTicketRequest(ticket_id=ticket_id), metadata=key())
    await stub.CloseTicket(pb.CloseTicketRequest(ticket_id=ticket_id), metadata=key())
    before = await last_sequence(service)
    cases = [
        (
            stub.ResolveTicket(pb.ResolveTicketRequest(ticket_id=ticket_id), metadata=key()),
            grpc.StatusCode.FAILED_PRECONDITION,
            "closed",
        ),
        (
            stub.ReopenTicket(pb.ReopenTicketRequest(ticket_id=ticket_id), metadata=key()),
            grpc.StatusCode.FAILED_PRECONDITION,
            "closed",
        ),
        (
            stub.GetTicket(pb.GetTicketRequest(ticket_id="T-doesnotexist")),
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
        (
            stub.ResolveTicket(pb.ResolveTicketRequest(ticket_id="T-doesnotexist"), metadata=key()),
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
        (
            stub.GetTicket(pb.GetTicketRequest(ticket_id="bad.id>")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a valid ticket id",
        ),
        (
            stub.GetTicket(pb.GetTicketRequest(ticket_id="")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "required",
        ),
        (
            stub.ListTickets(pb.ListTicketsRequest(page_size=10_000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size",
        ),
        (
            stub.ListTickets(pb.ListTicketsRequest(page_token="!!!")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
    ]
    for call, code, words in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == code
        assert words in (caught.value.details() or "")
    assert await last_sequence(service) == before


async def test_assign_without_agent_takes_the_skill_and_load_suggestion(stub: Stub) -> None:
    opened = await stub.OpenTicket(
        open_request(type=t.TICKET_TYPE_COMPLAINT, channel=t.CHANNEL_PHONE), metadata=key()
    )
    ticket_id = opened.ticket.ticket_id
    suggestions = await stub.SuggestAssignee(pb.SuggestAssigneeRequest(ticket_id=ticket_id))
    # agent-zhang has complaint + senior + phone: all three required skills.
    assert suggestions.suggestions[0].agent_id == "agent-zhang"
    assigned = await stub.AssignTicket(pb.AssignTicketRequest(ticket_id=ticket_id), metadata=key())
    assert assigned.ticket.assignee_id == "agent-zhang"
    assert assigned.ticket.status == t.TICKET_STATUS_ASSIGNED


def requests_counted(method: str, code: str) -> float:
    labels = {"method": method, "code": code}
    return REGISTRY.get_sample_value("careops_grpc_requests_total", labels) or 0.0


async def test_request_metrics_count_a_refused_call_under_its_status_code(stub: Stub) -> None:
    method = "/careops.ticketing.v1.TicketingService/GetTicket"
    before = {code: requests_counted(method, code) for code in ("OK", "NOT_FOUND")}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTicket(pb.GetTicketRequest(ticket_id="T-404404404"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert requests_counted(method, "NOT_FOUND") == before["NOT_FOUND"] + 1
    assert requests_counted(method, "OK") == before["OK"]
