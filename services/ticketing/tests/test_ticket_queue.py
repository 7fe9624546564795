"""ListTickets as a queue (issue 15): the SLA clocks on each summary, the nearest-due order over
the open tickets, paged; and ListCompensations across tickets (the supervisor's approvals).
Real gRPC, NATS and SQLite, on a FakeClock so the due times are the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.identity import Principal

from tests.support import FakeClock, channel_to
from ticketing.main import TicketingService
from ticketing.tests.conftest import running_service

Stub = ticketing_pb2_grpc.TicketingServiceStub
AGENT = Principal("agent-wang", frozenset({"agent"}), "tests")  # limit below 2500 CNY


@pytest.fixture(scope="module")
async def queue(
    tmp_path_factory: pytest.TempPathFactory, module_nats: EmbeddedNats
) -> AsyncIterator[tuple[TicketingService, Stub, FakeClock]]:
    clock = FakeClock()
    data = tmp_path_factory.mktemp("queue")
    async with (
        running_service(data, module_nats.url, clock=clock) as service,
        channel_to(service) as channel,
    ):
        yield service, Stub(channel), clock


def key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


async def open_ticket(stub: Stub, customer: str, priority: int, subject: str) -> pb.Ticket:
    opened = await stub.OpenTicket(
        pb.OpenTicketRequest(
            customer_id=customer,
            channel=t.CHANNEL_EMAIL,
            type=t.TICKET_TYPE_FAULT,
            priority=priority,  # type: ignore[arg-type]
            subject=subject,
        ),
        metadata=key(),
    )
    return opened.ticket


def nearest_due(ticket: pb.Ticket) -> float:
    """The ticket's nearest running due time, as GetTicket tells it (the oracle)."""
    dues = [
        c.due_at.ToDatetime().timestamp() for c in ticket.sla if c.running and c.HasField("due_at")
    ]
    return min(dues)


async def test_summaries_carry_the_clocks_and_the_sla_order_is_nearest_due_first_paged(
    queue: tuple[TicketingService, Stub, FakeClock],
) -> None:
    _service, stub, clock = queue
    customer = f"C-{uuid.uuid4().hex[:8]}"
    # Opened low first, urgent last: newest-first and oldest-first both differ from due order.
    opened = []
    for priority in (t.PRIORITY_LOW, t.PRIORITY_NORMAL, t.PRIORITY_HIGH, t.PRIORITY_URGENT):
        opened.append(await open_ticket(stub, customer, priority, f"p{priority}"))
        clock.advance(1)
    held = await open_ticket(stub, customer, t.PRIORITY_URGENT, "waiting for the customer")
    hold = await stub.HoldTicket(
        pb.HoldTicketRequest(ticket_id=held.ticket_id, reason=t.HOLD_REASON_WAITING_CUSTOMER),
        metadata=key(),
    )
    details = [
        (await stub.GetTicket(pb.GetTicketRequest(ticket_id=x.ticket_id))).ticket for x in opened
    ]
    expected = [x.ticket_id for x in sorted(details, key=nearest_due)] + [held.ticket_id]
    assert expected[:4] != [x.ticket_id for x in opened]

    request = pb.ListTicketsRequest(
        customer_id=customer,
        order=pb.TICKET_ORDER_SLA_DUE,
        open_only=True,
        min_sequence=hold.sequence,
    )
    listed = await stub.ListTickets(request)
    assert [x.ticket_id for x in listed.tickets] == expected
    first = listed.tickets[0]
    oracle = next(d for d in details if d.ticket_id == first.ticket_id)
    assert first.sla_due_at.ToDatetime().timestamp() == nearest_due(oracle)
    clocks = {c.clock: c for c in first.sla}
    assert clocks[t.SLA_CLOCK_FIRST_RESPONSE].running
    assert clocks[t.SLA_CLOCK_FIRST_RESPONSE].due_at == next(
        c.due_at for c in oracle.sla if c.clock == t.SLA_CLOCK_FIRST_RESPONSE
    )
    last = listed.tickets[-1]
    assert not last.HasField("sla_due_at")
    assert all(c.paused for c in last.sla if c.clock == t.SLA_CLOCK_FIRST_RESPONSE)

    paged, token = [], ""
    while True:
        request.page_size, request.page_token = 2, token
        page = await stub.ListTickets(request)
        paged += [x.ticket_id for x in page.tickets]
        token = page.next_page_token
        if not token:
            break
    assert paged == expected

    oldest = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id=customer, order=pb.TICKET_ORDER_OLDEST_FIRST)
    )
    assert [x.ticket_id for x in oldest.tickets] == [x.ticket_id for x in opened] + [held.ticket_id]


async def test_a_reply_stops_the_first_response_clock_on_the_summary(
    queue: tuple[TicketingService, Stub, FakeClock],
) -> None:
    _service, stub, _clock = queue
    customer = f"C-{uuid.uuid4().hex[:8]}"
    ticket = await open_ticket(stub, customer, t.PRIORITY_HIGH, "answered")
    reply = await stub.AddReply(
        pb.AddReplyRequest(ticket_id=ticket.ticket_id, author=t.AUTHOR_AGENT, body="On it"),
        metadata=key(),
    )
    listed = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id=customer, min_sequence=reply.sequence)
    )
    clocks = {c.clock: c for c in listed.tickets[0].sla}
    assert clocks[t.SLA_CLOCK_FIRST_RESPONSE].met
    assert not clocks[t.SLA_CLOCK_FIRST_RESPONSE].running
    assert clocks[t.SLA_CLOCK_RESOLUTION].running
    resolution_due = clocks[t.SLA_CLOCK_RESOLUTION].due_at
    assert listed.tickets[0].sla_due_at == resolution_due


async def test_bad_order_and_foreign_tokens_are_invalid_arguments(
    queue: tuple[TicketingService, Stub, FakeClock],
) -> None:
    _service, stub, _clock = queue
    bad = [
        pb.ListTicketsRequest(order=99),  # type: ignore[arg-type]
        pb.ListTicketsRequest(order=pb.TICKET_ORDER_SLA_DUE, page_token="!!!"),
        # A newest-first token is not a token of the SLA order.
        pb.ListTicketsRequest(order=pb.TICKET_ORDER_SLA_DUE, page_token="MTI="),
        pb.ListCompensationsRequest(status=t.COMPENSATION_STATUS_GRANTED),
        pb.ListCompensationsRequest(page_size=10_000),
    ]
    for request in bad:
        method = (
            stub.ListTickets
            if isinstance(request, pb.ListTicketsRequest)
            else stub.ListCompensations
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await method(request)  # type: ignore[operator]
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request


async def test_pending_compensations_of_every_ticket_are_listed_until_decided(
    queue: tuple[TicketingService, Stub, FakeClock],
) -> None:
    service, stub, _clock = queue
    customer = f"C-{uuid.uuid4().hex[:8]}"
    tickets = [
        await open_ticket(stub, customer, t.PRIORITY_NORMAL, f"refund {i}") for i in range(2)
    ]
    pending = []
    async with channel_to(service, AGENT) as channel:
        agent = Stub(channel)
        for ticket in tickets:
            await stub.AssignTicket(
                pb.AssignTicketRequest(ticket_id=ticket.ticket_id, agent_id=AGENT.subject),
                metadata=key(),
            )
            granted = await agent.GrantCompensation(
                pb.GrantCompensationRequest(
                    ticket_id=ticket.ticket_id,
                    kind=t.COMPENSATION_KIND_REFUND,
                    amount="2500",
                    currency="CNY",
                    reason="router died twice",
                ),
                metadata=key(),
            )
            assert granted.compensation.status == t.COMPENSATION_STATUS_PENDING
            pending.append(
                (ticket.ticket_id, granted.compensation.compensation_id, granted.sequence)
            )

    listed = await stub.ListCompensations(pb.ListCompensationsRequest(min_sequence=pending[-1][2]))
    assert {(c.ticket_id, c.compensation_id) for c in listed.compensations} >= {
        (ticket_id, compensation_id) for ticket_id, compensation_id, _ in pending
    }
    assert all(c.status == t.COMPENSATION_STATUS_PENDING for c in listed.compensations)
    summaries = await stub.ListTickets(pb.ListTicketsRequest(customer_id=customer))
    assert [s.pending_compensations for s in summaries.tickets] == [1, 1]

    ticket_id, compensation_id, _ = pending[0]
    approved = await stub.ApproveCompensation(
        pb.ApproveCompensationRequest(ticket_id=ticket_id, compensation_id=compensation_id),
        metadata=key(),
    )
    after = await stub.ListCompensations(
        pb.ListCompensationsRequest(min_sequence=approved.sequence, page_size=1)
    )
    seen = {c.compensation_id for c in after.compensations}
    token = after.next_page_token
    while token:
        page = await stub.ListCompensations(
            pb.ListCompensationsRequest(page_size=1, page_token=token)
        )
        seen |= {c.compensation_id for c in page.compensations}
        token = page.next_page_token
    assert compensation_id not in seen
    assert pending[1][1] in seen
