"""SLA warnings and breaches fired by the timer mechanism of a running service (real NATS)."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import careops_sla
import grpc
import pytest
import yaml
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.model import EVENT_TYPE_HEADER
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_platform.server import start_metrics
from prometheus_client.parser import text_string_to_metric_families

from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService
from ticketing.tests.conftest import running_service

FIRST_RESPONSE_SECONDS = 1.5


def short_policy(path: Path) -> Path:
    """The default policy with every cell overridden to seconds, 24x7 for chat."""
    data = yaml.safe_load(
        Path(careops_sla.__file__).parent.joinpath("sla_default.yaml").read_text()
    )
    data["version"] = "test-seconds-1"
    data["overrides"] = [{"first_response": f"{FIRST_RESPONSE_SECONDS}s", "resolution": "60s"}]
    target = path / "sla.yaml"
    target.write_text(yaml.safe_dump(data))
    return target


@pytest.fixture
async def fast_sla(
    tmp_path: Path, module_nats: EmbeddedNats
) -> AsyncIterator[tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub]]:
    policy = short_policy(tmp_path)
    async with running_service(
        tmp_path / "data", module_nats.url, sla_policy_file=str(policy)
    ) as service:
        assert service.server is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
            yield service, ticketing_pb2_grpc.TicketingServiceStub(channel)


async def open_chat(stub: ticketing_pb2_grpc.TicketingServiceStub) -> str:
    response = await stub.OpenTicket(
        pb.OpenTicketRequest(
            customer_id="C-9",
            channel=t.CHANNEL_CHAT,
            type=t.TICKET_TYPE_CONSULTATION,
            priority=t.PRIORITY_NORMAL,
            subject="Where is my order?",
        )
    )
    return str(response.ticket.ticket_id)


async def clock_of(
    stub: ticketing_pb2_grpc.TicketingServiceStub, ticket_id: str
) -> t.SlaClockSnapshot:
    ticket = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id))).ticket
    return next(c for c in ticket.sla if c.clock == t.SLA_CLOCK_FIRST_RESPONSE)


async def wait_breached(
    stub: ticketing_pb2_grpc.TicketingServiceStub, ticket_id: str, within: float
) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if (await clock_of(stub, ticket_id)).breached:
            return True
        await asyncio.sleep(0.1)
    return False


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def breach_count(metrics: str) -> float:
    """Sums the first-response breach samples of chat tickets in a scrape."""
    wanted = {"clock": "first_response", "kind": "breach", "channel": "chat"}
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "careops_sla_events"
        for sample in family.samples
        if sample.name == "careops_sla_events_total"
        and all(sample.labels.get(k) == v for k, v in wanted.items())
    )


async def test_unanswered_ticket_warns_then_breaches_once_on_log_api_and_metrics(
    fast_sla: tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub],
) -> None:
    service, stub = fast_sla
    metrics_port = free_port()
    start_metrics("127.0.0.1", metrics_port)
    before = breach_count(scrape(metrics_port))
    ticket_id = await open_chat(stub)
    assert await wait_breached(stub, ticket_id, within=FIRST_RESPONSE_SECONDS + 3)
    await asyncio.sleep(0.5)  # give a duplicate firing the chance to happen
    assert service.store is not None
    messages = await service.store.read_subject(
        stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{ticket_id}"
    )
    types = [m.headers[EVENT_TYPE_HEADER] for m in messages]
    assert types.count("careops.ticketing.v1.SlaWarningRaised") == 1
    assert types.count("careops.ticketing.v1.SlaBreached") == 1
    breach = next(m for m in messages if "SlaBreached" in m.headers[EVENT_TYPE_HEADER])
    assert breach.batch.events[0].policy_versions["sla_policy"] == "test-seconds-1"
    assert breach_count(scrape(metrics_port)) == before + 1
    listed = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id="C-9", min_sequence=messages[-1].sequence)
    )
    assert any(item.ticket_id == ticket_id and item.sla_breached for item in listed.tickets)


async def test_clock_does_not_run_while_waiting_for_the_customer(
    fast_sla: tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub],
) -> None:
    _service, stub = fast_sla
    ticket_id = await open_chat(stub)
    await stub.HoldTicket(
        pb.HoldTicketRequest(ticket_id=ticket_id, reason=t.HOLD_REASON_WAITING_CUSTOMER)
    )
    await asyncio.sleep(FIRST_RESPONSE_SECONDS + 1)
    paused = await clock_of(stub, ticket_id)
    assert paused.paused and not paused.breached and not paused.running
    assert paused.consumed.ToTimedelta().total_seconds() < FIRST_RESPONSE_SECONDS
    await stub.ResumeTicket(pb.ResumeTicketRequest(ticket_id=ticket_id))
    assert await wait_breached(stub, ticket_id, within=FIRST_RESPONSE_SECONDS + 3)


async def test_answered_ticket_never_breaches(
    fast_sla: tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub],
) -> None:
    _service, stub = fast_sla
    ticket_id = await open_chat(stub)
    await stub.AddReply(
        pb.AddReplyRequest(ticket_id=ticket_id, author=t.AUTHOR_AGENT, body="Checking now")
    )
    assert not await wait_breached(stub, ticket_id, within=FIRST_RESPONSE_SECONDS + 1)
    clock = await clock_of(stub, ticket_id)
    assert clock.met and not clock.running
