"""The agent directory and fair routing through the gRPC API, on a real NATS and database.

The seed agents (agents_default.yaml) cover neither return tickets by phone or social media
nor consultations by phone: each test routes one of those, to agents of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from functools import partial

import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.identity import Principal

from tests.support import channel_to, eventually
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService
from ticketing.tests.conftest import running_service

# The module's service runs on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases

Stub = ticketing_pb2_grpc.TicketingServiceStub


@pytest.fixture(scope="module")
async def service(
    tmp_path_factory: pytest.TempPathFactory, module_nats: EmbeddedNats, service_database_url: str
) -> AsyncIterator[TicketingService]:
    """The service with its router on."""
    data = tmp_path_factory.mktemp("data")
    async with running_service(
        data, module_nats.url, auto_route=True, database_url=service_database_url
    ) as running:
        yield running


def agent_request(
    agent_id: str, channel: t.Channel.ValueType, capacity: int, kind: str
) -> pb.PutAgentRequest:
    return pb.PutAgentRequest(
        agent_id=agent_id,
        name=agent_id.title(),
        team="router-tests",
        channels=[t.ChannelCapacity(channel=channel, capacity=capacity)],
        ticket_types=[kind],
        languages=["zh", "en"],
        availability=t.AVAILABILITY_ONLINE,
    )


async def open_ticket(
    stub: Stub, channel: t.Channel.ValueType, kind: t.TicketType.ValueType
) -> pb.OpenTicketResponse:
    response: pb.OpenTicketResponse = await stub.OpenTicket(
        pb.OpenTicketRequest(
            customer_id="c-route",
            channel=channel,
            type=kind,
            priority=t.PRIORITY_NORMAL,
            subject="Where is my refund",
        )
    )
    return response


async def assignee(stub: Stub, ticket_id: str) -> str:
    return str((await stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id))).ticket.assignee_id)


async def routed_past(service: TicketingService, sequence: int) -> None:
    """Waits until the router has handled the stream up to `sequence`."""
    assert service.router is not None
    router = service.router
    await eventually(lambda: router.handled >= sequence, what=f"router at {sequence}")


async def test_two_agents_at_capacity_a_new_ticket_waits_and_resolving_one_assigns_it(
    service: TicketingService, stub: Stub
) -> None:
    names = [f"r-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for name in names:
        await stub.PutAgent(agent_request(name, t.CHANNEL_PHONE, 1, "return"))
    first = await open_ticket(stub, t.CHANNEL_PHONE, t.TICKET_TYPE_RETURN)
    second = await open_ticket(stub, t.CHANNEL_PHONE, t.TICKET_TYPE_RETURN)
    ids = [first.ticket.ticket_id, second.ticket.ticket_id]

    async def both_assigned() -> list[str] | None:
        found = [await assignee(stub, ticket_id) for ticket_id in ids]
        return found if all(found) else None

    assert sorted(await eventually(both_assigned, what="both assigned")) == sorted(names)

    async def loads() -> dict[str, int] | None:
        listed = await stub.ListAgents(pb.ListAgentsRequest(team="router-tests"))
        found = {a.agent_id: a.open_tickets for a in listed.agents if a.agent_id in names}
        return found if found == dict.fromkeys(names, 1) else None

    # The directory's loads (read by the router and the agent views): one ticket each.
    assert await eventually(loads, what="each agent's load") == dict.fromkeys(names, 1)

    waiting = await open_ticket(stub, t.CHANNEL_PHONE, t.TICKET_TYPE_RETURN)
    await routed_past(service, waiting.sequence)
    assert await assignee(stub, waiting.ticket.ticket_id) == ""

    freed = await assignee(stub, ids[0])
    await stub.ResolveTicket(pb.ResolveTicketRequest(ticket_id=ids[0], resolution="refunded"))

    async def taken() -> str | None:
        return await assignee(stub, waiting.ticket.ticket_id) or None

    assert await eventually(taken, timeout=5, what="the waiting ticket assigned") == freed
    assert service.store is not None
    batches = await service.store.read_subject(
        stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{waiting.ticket.ticket_id}"
    )
    assigned = [e for b in batches for e in b.batch.events if e.type.endswith("TicketAssigned")]
    assert [e.actor for e in assigned] == ["tester via router"]


async def test_an_agent_going_offline_hands_back_unstarted_tickets_until_back_online(
    service: TicketingService, stub: Stub
) -> None:
    name = f"r-{uuid.uuid4().hex[:6]}"
    await stub.PutAgent(agent_request(name, t.CHANNEL_SOCIAL, 2, "return"))
    unstarted = (await open_ticket(stub, t.CHANNEL_SOCIAL, t.TICKET_TYPE_RETURN)).ticket
    started = (await open_ticket(stub, t.CHANNEL_SOCIAL, t.TICKET_TYPE_RETURN)).ticket
    for ticket_id in (unstarted.ticket_id, started.ticket_id):
        await eventually(partial(_is, stub, ticket_id, name), what=f"{ticket_id} assigned")
    me = Principal(name, frozenset({"agent"}), "tests")
    async with channel_to(service, me) as channel:
        own = Stub(channel)
        await own.AddReply(
            pb.AddReplyRequest(ticket_id=started.ticket_id, author=t.AUTHOR_AGENT, body="On it")
        )
        gone = await own.SetAvailability(
            pb.SetAvailabilityRequest(availability=t.AVAILABILITY_OFFLINE)
        )
        assert gone.agent.availability == t.AVAILABILITY_OFFLINE

        await eventually(lambda: _is(stub, unstarted.ticket_id, ""), what="handed back")
        assert await assignee(stub, started.ticket_id) == name
        listed = await stub.GetTicket(pb.GetTicketRequest(ticket_id=unstarted.ticket_id))
        assert listed.ticket.status == t.TICKET_STATUS_OPEN

        await own.SetAvailability(pb.SetAvailabilityRequest(availability=t.AVAILABILITY_ONLINE))
        await eventually(lambda: _is(stub, unstarted.ticket_id, name), what="routed again")
    # The router's events name the agent whose change caused them, once, and never the router
    # alone: the hand-back, then the assignment when they came back.
    assert service.store is not None
    batches = await service.store.read_subject(
        stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{unstarted.ticket_id}"
    )
    by_router = [e for b in batches for e in b.batch.events if e.actor.endswith("router")]
    assert [(e.type.rsplit(".", 1)[1], e.actor) for e in by_router] == [
        ("TicketAssigned", "tester via router"),
        ("TicketReturnedToQueue", f"{name} via router"),
        ("TicketAssigned", f"{name} via router"),
    ]


async def _is(stub: Stub, ticket_id: str, agent_id: str) -> bool:
    return await assignee(stub, ticket_id) == agent_id


async def test_the_directory_rpcs_validate_and_refuse(
    service: TicketingService, stub: Stub
) -> None:
    name = f"r-{uuid.uuid4().hex[:6]}"
    put = await stub.PutAgent(agent_request(name, t.CHANNEL_PHONE, 3, "consultation"))
    assert put.agent.open_tickets == 0 and put.agent.languages == ["en", "zh"]
    got = (await stub.GetAgent(pb.GetAgentRequest(agent_id=name))).agent
    assert got.availability == t.AVAILABILITY_ONLINE and got.team == "router-tests"
    listed = await stub.ListAgents(
        pb.ListAgentsRequest(team="router-tests", min_sequence=put.sequence)
    )
    assert name in [agent.agent_id for agent in listed.agents]

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.PutAgent(agent_request(name, t.CHANNEL_PHONE, 0, "cooking"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetAgent(pb.GetAgentRequest(agent_id="nobody-here"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    ticket = (await open_ticket(stub, t.CHANNEL_EMAIL, t.TICKET_TYPE_FAULT)).ticket
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await stub.AssignTicket(
            pb.AssignTicketRequest(ticket_id=ticket.ticket_id, agent_id="nobody")
        )
    assert stranger.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not in the directory" in (stranger.value.details() or "")

    suggested = await stub.SuggestAssignee(pb.SuggestAssigneeRequest(ticket_id=ticket.ticket_id))
    assert suggested.suggestions and "spare" in suggested.suggestions[0].reason

    other = Principal("agent-li", frozenset({"agent"}), "tests")
    async with channel_to(service, other) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await Stub(channel).SetAvailability(
                pb.SetAvailabilityRequest(agent_id=name, availability=t.AVAILABILITY_AWAY)
            )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_angry_chinese_message_raises_priority_and_waits_for_a_senior_agent(
    service: TicketingService, stub: Stub
) -> None:
    # Social-media consultations: no seed agent and no other test covers them.
    junior = agent_request(f"j-{uuid.uuid4().hex[:6]}", t.CHANNEL_SOCIAL, 5, "consultation")
    await stub.PutAgent(junior)
    opened = await stub.OpenTicket(
        pb.OpenTicketRequest(
            customer_id="c-route",
            channel=t.CHANNEL_SOCIAL,
            type=t.TICKET_TYPE_CONSULTATION,
            priority=t.PRIORITY_NORMAL,
            subject="你们太过分了，我要投诉！",
        )
    )
    assert opened.ticket.priority == t.PRIORITY_HIGH
    assert opened.ticket.emotion == t.EMOTION_ANGRY and opened.ticket.angry_customer
    await routed_past(service, opened.sequence)
    # Only a junior agent is free: the angry customer's ticket waits for a senior one.
    assert await assignee(stub, opened.ticket.ticket_id) == ""

    senior = agent_request(f"s-{uuid.uuid4().hex[:6]}", t.CHANNEL_SOCIAL, 5, "consultation")
    senior.senior = True
    await stub.PutAgent(senior)

    async def taken() -> str | None:
        return await assignee(stub, opened.ticket.ticket_id) or None

    assert await eventually(taken, timeout=5, what="a senior agent assigned") == senior.agent_id
