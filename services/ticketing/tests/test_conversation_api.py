"""GetConversation, internal notes and macros over real gRPC, NATS JetStream and SQL."""

from __future__ import annotations

import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_platform.identity import Principal

from tests.support import channel_to, open_request
from ticketing.main import TicketingService
from ticketing.tests.test_grpc_api import key, violations

Stub = ticketing_pb2_grpc.TicketingServiceStub
CONNECTOR = Principal("mail-connector", frozenset({"integration"}), "tests")
AGENT = t.AUTHOR_AGENT
CUSTOMER = t.AUTHOR_CUSTOMER
INTERNAL = pb.VISIBILITY_INTERNAL


async def conversation(
    stub: Stub, ticket_id: str, sequence: int, size: int = 2
) -> list[pb.ConversationMessage]:
    """Reads every page of the conversation, `size` entries at a time."""
    messages: list[pb.ConversationMessage] = []
    token = ""
    while True:
        request = pb.GetConversationRequest(
            ticket_id=ticket_id, page_size=size, page_token=token, min_sequence=sequence
        )
        page = await stub.GetConversation(request)
        assert len(page.messages) <= size
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            return messages


def first_response(ticket: pb.Ticket) -> t.SlaClockSnapshot:
    return next(c for c in ticket.sla if c.clock == t.SLA_CLOCK_FIRST_RESPONSE)


async def test_the_conversation_pages_every_text_oldest_first_and_notes_keep_the_clock(
    stub: Stub,
) -> None:
    opened = await stub.OpenTicket(open_request(), metadata=key())
    ticket_id = opened.ticket.ticket_id

    async def reply(author: int, body: str, **fields: object) -> pb.AddReplyResponse:
        request = pb.AddReplyRequest(ticket_id=ticket_id, author=author, body=body, **fields)  # type: ignore[arg-type]
        return await stub.AddReply(request, metadata=key())

    await reply(CUSTOMER, "Still broken", author_id="C-1", channel=t.CHANNEL_PHONE)
    noted = await reply(AGENT, "Probably the fuser", visibility=INTERNAL)
    # A note is no answer: the first-response clock runs on, no agent reply is counted.
    assert first_response(noted.ticket).running
    assert noted.ticket.agent_replies == 0
    assert not noted.ticket.HasField("first_responded_at")
    listed = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id="C-1", min_sequence=noted.sequence, page_size=500)
    )
    row = next(item for item in listed.tickets if item.ticket_id == ticket_id)
    assert row.status == t.TICKET_STATUS_OPEN  # a note does not put the ticket in progress
    answered = await reply(AGENT, "We will send a technician")
    assert not first_response(answered.ticket).running
    assert answered.ticket.HasField("first_responded_at")
    hold = pb.HoldTicketRequest(
        ticket_id=ticket_id, reason=t.HOLD_REASON_WAITING_THIRD_PARTY, note="part ordered"
    )
    await stub.HoldTicket(hold, metadata=key())
    await stub.ResumeTicket(pb.ResumeTicketRequest(ticket_id=ticket_id), metadata=key())
    resolve = pb.ResolveTicketRequest(ticket_id=ticket_id, resolution="fuser replaced")
    resolved = await stub.ResolveTicket(resolve, metadata=key())

    messages = await conversation(stub, ticket_id, resolved.sequence)
    assert [(m.kind, m.body) for m in messages] == [
        ("opened", "Since this morning"),
        ("reply", "Still broken"),
        ("note", "Probably the fuser"),
        ("reply", "We will send a technician"),
        ("hold", "part ordered"),
        ("resolution", "fuser replaced"),
    ]
    assert messages[0].subject == "Printer shows E42"
    assert [m.sequence for m in messages] == sorted(m.sequence for m in messages)
    customer, note, agent = messages[1:4]
    assert (customer.author, customer.author_id, customer.channel) == (
        CUSTOMER,
        "C-1",
        t.CHANNEL_PHONE,
    )
    assert (note.author, note.author_id, note.visibility) == (AGENT, "tester", INTERNAL)
    assert (agent.visibility, agent.channel) == (pb.VISIBILITY_PUBLIC, t.CHANNEL_EMAIL)
    assert messages[4].visibility == INTERNAL and messages[4].author_id == "tester"
    assert messages[5].visibility == pb.VISIBILITY_PUBLIC
    assert all(m.HasField("at") for m in messages)


async def test_a_connector_never_reads_nor_writes_internal_notes(
    service: TicketingService, stub: Stub
) -> None:
    opened = await stub.OpenTicket(open_request(), metadata=key())
    ticket_id = opened.ticket.ticket_id
    note = pb.AddReplyRequest(ticket_id=ticket_id, author=AGENT, body="VIP", visibility=INTERNAL)
    noted = await stub.AddReply(note, metadata=key())
    async with channel_to(service, CONNECTOR) as channel:
        connector = Stub(channel)
        seen = await conversation(connector, ticket_id, noted.sequence, size=50)
        assert [m.kind for m in seen] == ["opened"]
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await connector.AddReply(note, metadata=key())
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    staff = await conversation(stub, ticket_id, noted.sequence, size=50)
    assert [m.kind for m in staff] == ["opened", "note"]


async def test_get_conversation_validates(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetConversation(pb.GetConversationRequest(ticket_id="T-nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    opened = await stub.OpenTicket(open_request(), metadata=key())
    for request in (
        pb.GetConversationRequest(ticket_id=""),
        pb.GetConversationRequest(ticket_id=opened.ticket.ticket_id, page_token="garbage"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.GetConversation(request)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    internal_by_customer = pb.AddReplyRequest(
        ticket_id=opened.ticket.ticket_id, author=CUSTOMER, body="x", visibility=INTERNAL
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AddReply(internal_by_customer, metadata=key())
    assert violations(refused.value) == {"visibility": "only an agent writes an internal note"}


async def test_macros_are_versioned_validated_rendered_into_replies_and_deleted(
    stub: Stub,
) -> None:
    body = "Dear {customer_name}, your ticket {ticket_id} about {product} is fixed. {agent_name}"
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        bad = pb.PutMacroRequest(macro_id="fixed", title="Fixed", body="Dear {name}")
        await stub.PutMacro(bad, metadata=key())
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown placeholder {name}" in violations(unknown.value)["body"]
    first = await stub.PutMacro(
        pb.PutMacroRequest(macro_id="fixed", title="Fixed", body="Hi {customer_name}"),
        metadata=key(),
    )
    assert first.macro.version == 1
    second = await stub.PutMacro(
        pb.PutMacroRequest(macro_id="fixed", title="Fixed", body=body), metadata=key()
    )
    assert second.macro.version == 2
    listed = await stub.ListMacros(pb.ListMacrosRequest(min_sequence=second.sequence))
    assert [(m.macro_id, m.version, m.body) for m in listed.macros] == [("fixed", 2, body)]

    opened = await stub.OpenTicket(open_request(product="P-200"), metadata=key())
    ticket_id = opened.ticket.ticket_id
    values = {"customer_name": "Ms Li", "agent_name": "Ann"}
    use = pb.AddReplyRequest(
        ticket_id=ticket_id, author=AGENT, macro_id="fixed", macro_values=values
    )
    replied = await stub.AddReply(use, metadata=key())
    assert replied.ticket.agent_replies == 1
    messages = await conversation(stub, ticket_id, replied.sequence, size=10)
    reply = messages[-1]
    expected = f"Dear Ms Li, your ticket {ticket_id} about P-200 is fixed. Ann"
    assert (reply.body, reply.macro_id, reply.macro_version) == (expected, "fixed", 2)

    refused = [
        (
            pb.AddReplyRequest(ticket_id=ticket_id, author=AGENT, macro_id="fixed"),
            "macro_values[customer_name]",
        ),
        (
            pb.AddReplyRequest(
                ticket_id=ticket_id, author=AGENT, macro_id="fixed", body="x", macro_values=values
            ),
            "body",
        ),
    ]
    for request, field in refused:
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.AddReply(request, metadata=key())
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(invalid.value)

    deleted = await stub.DeleteMacro(pb.DeleteMacroRequest(macro_id="fixed"), metadata=key())
    listed = await stub.ListMacros(pb.ListMacrosRequest(min_sequence=deleted.sequence))
    assert "fixed" not in [m.macro_id for m in listed.macros]
    for call in (
        stub.DeleteMacro(pb.DeleteMacroRequest(macro_id="fixed"), metadata=key()),
        stub.AddReply(use, metadata=key()),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await call
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
