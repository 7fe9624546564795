"""Issue 11 item 3: a scenario by three principals through the gateway; the log names each of
them on every event their calls (and the reactions to them) wrote, and the audit returns
exactly those events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import grpc
import pytest
from careops.events.v1.envelope_pb2 import EventEnvelope
from careops.gateway.v1 import gateway_pb2 as gw
from careops.gateway.v1 import gateway_pb2_grpc
from careops.incident.v1 import incident_pb2_grpc
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.causes import principal
from careops_eventstore.codec import to_timestamp
from careops_eventstore.jetstream import JetStreamEventStore, connect
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_platform.audit import AuditEntry, audit
from incident.application import INCIDENT_SUBJECTS
from incident.application import STREAM as INCIDENT_STREAM
from incident.main import IncidentService
from incident.tests.test_paging import declare
from ticketing.application import SUBJECT_PREFIX
from ticketing.main import TicketingService
from ticketing.tests.test_grpc_api import key

from gateway.main import GatewayService
from gateway.tests.conftest import address, authorization, running_gateway
from gateway.tests.issuer import authorized_channel, shared_issuer
from tests.support import channel_to, eventually, open_request, read_log


@pytest.fixture(scope="module")
async def gateway(
    ticketing: TicketingService, incident: IncidentService, module_nats: EmbeddedNats
) -> AsyncIterator[GatewayService]:
    """The gateway in front of ticketing and incident, reading the audit from their log."""
    overrides = {"nats_url": module_nats.url}
    backends = {"ticketing": address(ticketing), "incident": address(incident)}
    async with running_gateway(overrides, **backends) as running:
        yield running


async def in_directory(ticketing: TicketingService, *agent_ids: str) -> None:
    """Puts the agents into ticketing's directory (as the test admin, straight to the service:
    none of the audited principals), so tickets can be assigned to them."""
    capacity = t.ChannelCapacity(channel=t.CHANNEL_EMAIL, capacity=5)
    async with channel_to(ticketing) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        for agent_id in agent_ids:
            await stub.PutAgent(
                pb.PutAgentRequest(agent_id=agent_id, channels=[capacity], ticket_types=["fault"])
            )


async def test_three_principals_each_own_their_events_and_the_audit_returns_them(
    gateway: GatewayService,
    ticketing: TicketingService,
    incident: IncidentService,
    module_nats: EmbeddedNats,
) -> None:
    run = uuid.uuid4().hex[:6]
    agent, supervisor, oncall = f"agent-{run}", f"sup-{run}", f"oncall-{run}"
    await in_directory(ticketing, agent)
    issuer = shared_issuer()
    since = datetime.now(UTC)
    async with authorized_channel(address(gateway), issuer.token(agent, ("agent",))) as channel:
        opened = await ticketing_pb2_grpc.TicketingServiceStub(channel).OpenTicket(
            open_request(), metadata=key(), timeout=10
        )
    ticket_id = opened.ticket.ticket_id
    token = issuer.token(supervisor, ("supervisor",))
    async with authorized_channel(address(gateway), token) as channel:
        await ticketing_pb2_grpc.TicketingServiceStub(channel).AssignTicket(
            pb.AssignTicketRequest(ticket_id=ticket_id, agent_id=agent),
            metadata=(*key(), ("careops-actor", agent)),  # a claim: the token decides
            timeout=10,
        )
    async with authorized_channel(address(gateway), issuer.token(oncall, ("oncall",))) as channel:
        declared = await declare(incident_pb2_grpc.IncidentServiceStub(channel))
    incident_id = declared.incident.incident_id

    async def incident_events() -> list[EventEnvelope]:
        subject = f"{INCIDENT_SUBJECTS}.{incident_id}"
        log = await read_log(module_nats.url, INCIDENT_STREAM.name, subject)
        return [event for message in log for event in message.batch.events]

    async def delivered() -> list[EventEnvelope] | None:
        events = await incident_events()
        # The pager's deliveries are reactions to the declaration: they carry its principal.
        return events if any(e.actor == f"{oncall} via dispatcher" for e in events) else None

    before = await eventually(delivered, what="the pager's deliveries")
    assert {principal(event.actor) for event in before} == {oncall}
    ticket_log = await read_log(
        module_nats.url, "CAREOPS_TICKETING", f"{SUBJECT_PREFIX}.{ticket_id}"
    )
    ticket_events = [event for message in ticket_log for event in message.batch.events]
    assert [event.actor for event in ticket_events][:2] == [agent, supervisor]

    nc = await connect(module_nats.url, name="careops-tests-audit")
    try:
        store = JetStreamEventStore(nc)
        found = {who: await audit(store, since=since, actor=who) for who in (agent, oncall)}
        found[supervisor] = await audit(store, since=since, actor=supervisor, service="ticketing")
        everyone = await audit(store, since=since)
    finally:
        await nc.close()
    expected = {
        agent: {e.event_id for e in ticket_events if principal(e.actor) == agent},
        supervisor: {e.event_id for e in ticket_events if principal(e.actor) == supervisor},
    }
    assert {who: ids(found[who]) for who in (agent, supervisor)} == expected
    # Deliveries still under way when the audit read may add events: none by anyone else.
    after = await incident_events()
    assert {e.event_id for e in before} <= ids(found[oncall]) <= {e.event_id for e in after}
    assert {principal(event.actor) for event in after} == {oncall}
    assert {(e.service, e.aggregate_id) for e in found[oncall]} == {("incident", incident_id)}
    assert ids(everyone) >= ids(found[agent]) | ids(found[supervisor]) | ids(found[oncall])
    assert all(entry.recorded_at >= since for entry in everyone)

    # The same through the gateway's RPC, for a supervisor; an agent may not read it.
    request = gw.ListAuditEventsRequest(actor=agent, since=to_timestamp(since))
    token = issuer.token(supervisor, ("supervisor",))
    async with authorized_channel(address(gateway), token) as channel:
        answered = await gateway_pb2_grpc.GatewayServiceStub(channel).ListAuditEvents(request)
    assert {event.event_id for event in answered.events} == expected[agent]
    assert not answered.truncated
    assert [event.actor for event in answered.events][:1] == [agent]
    async with authorized_channel(address(gateway), issuer.token(agent, ("agent",))) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await gateway_pb2_grpc.GatewayServiceStub(channel).ListAuditEvents(request)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_audit_rpc_over_http_names_what_is_wrong(
    gateway: GatewayService, module_nats: EmbeddedNats
) -> None:
    assert gateway.http is not None
    path = (
        f"http://127.0.0.1:{gateway.http.port}/v1/careops.gateway.v1.GatewayService/ListAuditEvents"
    )
    async with aiohttp.ClientSession(headers=authorization()) as http:
        async with http.post(path, json={"actor": "nobody"}) as response:
            assert response.status == 400
            body = await response.json()
        assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "since" in body["message"]
        since = {"since": "2026-01-01T00:00:00Z"}
        async with http.post(path, json={**since, "service": "gateway"}) as response:
            assert response.status == 400
        async with http.post(path, json={**since, "limit": 5000}) as response:
            assert response.status == 400
        async with http.post(path, json={**since, "actor": "nobody-at-all"}) as response:
            assert response.status == 200, await response.text()
            assert await response.json() == {"events": [], "truncated": False}


def ids(entries: list[AuditEntry]) -> set[str]:
    return {entry.event_id for entry in entries}


async def test_an_agent_working_another_agents_ticket_is_denied_through_the_gateway(
    gateway: GatewayService, ticketing: TicketingService, module_nats: EmbeddedNats
) -> None:
    run = uuid.uuid4().hex[:6]
    owner, other = f"agent-{run}-a", f"agent-{run}-b"
    await in_directory(ticketing, owner)
    issuer = shared_issuer()
    supervisor = issuer.token(f"sup-{run}", ("supervisor",))
    async with authorized_channel(address(gateway), supervisor) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        opened = await stub.OpenTicket(open_request(), metadata=key(), timeout=10)
        ticket_id = opened.ticket.ticket_id
        await stub.AssignTicket(
            pb.AssignTicketRequest(ticket_id=ticket_id, agent_id=owner), metadata=key(), timeout=10
        )
    subject = f"{SUBJECT_PREFIX}.{ticket_id}"
    before = await read_log(module_nats.url, "CAREOPS_TICKETING", subject)
    reply = pb.AddReplyRequest(ticket_id=ticket_id, author=t.AUTHOR_AGENT, body="mine now")
    async with authorized_channel(address(gateway), issuer.token(other, ("agent",))) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await ticketing_pb2_grpc.TicketingServiceStub(channel).AddReply(
                reply, metadata=key(), timeout=10
            )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "ticket.reply" in (denied.value.details() or "")
    assert await read_log(module_nats.url, "CAREOPS_TICKETING", subject) == before
    async with authorized_channel(address(gateway), issuer.token(owner, ("agent",))) as channel:
        answered = await ticketing_pb2_grpc.TicketingServiceStub(channel).AddReply(
            reply, metadata=key(), timeout=10
        )
    assert answered.sequence > 0
    after = await read_log(module_nats.url, "CAREOPS_TICKETING", subject)
    assert [e.actor for m in after[len(before) :] for e in m.batch.events][:1] == [owner]
