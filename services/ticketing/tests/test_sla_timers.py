"""SLA warnings and breaches fired by the timer mechanism of a running service (real NATS),
on a FakeClock: deadlines are reached by advancing it, never by waiting."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import careops_sla
import pytest
import yaml
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.model import EVENT_TYPE_HEADER
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_platform.server import start_metrics
from prometheus_client.parser import text_string_to_metric_families

from tests.support import FakeClock, channel_to, event_types, eventually, fire_due_timers
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService
from ticketing.projections import SlaTimerProjection
from ticketing.tests.conftest import running_service

FIRST_RESPONSE_SECONDS = 1.5
TICK = timedelta(milliseconds=1)
WARNING = "careops.ticketing.v1.SlaWarningRaised"
BREACH = "careops.ticketing.v1.SlaBreached"


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
) -> AsyncIterator[tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub, FakeClock]]:
    policy = short_policy(tmp_path)
    clock = FakeClock()
    async with running_service(
        tmp_path / "data", module_nats.url, clock=clock, sla_policy_file=str(policy)
    ) as service:
        assert service.server is not None
        async with channel_to(service) as channel:
            yield service, ticketing_pb2_grpc.TicketingServiceStub(channel), clock


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


async def sla_types(service: TicketingService, ticket_id: str) -> list[str]:
    assert service.store is not None
    subject = f"{SUBJECT_PREFIX}.{ticket_id}"
    return event_types(await service.store.read_subject(stream=STREAM.name, subject=subject))


async def at(service: TicketingService, clock: FakeClock, when: datetime) -> None:
    """Moves the clock to `when` and runs the scheduler once."""
    clock.set(when)
    await fire_due_timers(service, SlaTimerProjection.name)


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
    fast_sla: tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub, FakeClock],
) -> None:
    service, stub, clock = fast_sla
    metrics_port = free_port()
    start_metrics("127.0.0.1", metrics_port)
    before = breach_count(scrape(metrics_port))
    ticket_id = await open_chat(stub)
    opened = await clock_of(stub, ticket_id)
    warn_at, due_at = opened.warn_at.ToDatetime(UTC), opened.due_at.ToDatetime(UTC)
    assert warn_at < due_at
    await at(service, clock, warn_at - TICK)
    assert WARNING not in await sla_types(service, ticket_id), "no warning before its time"
    await at(service, clock, warn_at)
    await eventually(lambda: _has(service, ticket_id, WARNING))
    await at(service, clock, due_at - TICK)
    assert BREACH not in await sla_types(service, ticket_id), "no breach before the deadline"
    await at(service, clock, due_at)
    await eventually(lambda: _has(service, ticket_id, BREACH))
    # Running the scheduler again, once the breach reached the timer table, fires nothing more.
    await at(service, clock, due_at + timedelta(seconds=5))
    assert service.store is not None
    messages = await service.store.read_subject(
        stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{ticket_id}"
    )
    types = event_types(messages)
    assert types.count(WARNING) == 1
    assert types.count(BREACH) == 1
    breach = next(m for m in messages if "SlaBreached" in m.headers[EVENT_TYPE_HEADER])
    assert breach.batch.events[0].policy_versions["sla_policy"] == "test-seconds-1"
    assert breach_count(scrape(metrics_port)) == before + 1
    assert (await clock_of(stub, ticket_id)).breached
    listed = await stub.ListTickets(
        pb.ListTicketsRequest(customer_id="C-9", min_sequence=messages[-1].sequence)
    )
    assert any(item.ticket_id == ticket_id and item.sla_breached for item in listed.tickets)


async def _has(service: TicketingService, ticket_id: str, kind: str) -> bool:
    return kind in await sla_types(service, ticket_id)


async def test_clock_does_not_run_while_waiting_for_the_customer(
    fast_sla: tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub, FakeClock],
) -> None:
    service, stub, clock = fast_sla
    ticket_id = await open_chat(stub)
    due_at = (await clock_of(stub, ticket_id)).due_at.ToDatetime(UTC)
    await stub.HoldTicket(
        pb.HoldTicketRequest(ticket_id=ticket_id, reason=t.HOLD_REASON_WAITING_CUSTOMER)
    )
    await at(service, clock, due_at + timedelta(seconds=1))
    assert BREACH not in await sla_types(service, ticket_id)
    paused = await clock_of(stub, ticket_id)
    assert paused.paused and not paused.breached and not paused.running
    assert paused.consumed.ToTimedelta().total_seconds() < FIRST_RESPONSE_SECONDS
    await stub.ResumeTicket(pb.ResumeTicketRequest(ticket_id=ticket_id))
    resumed = await clock_of(stub, ticket_id)
    assert resumed.running and resumed.due_at.ToDatetime(UTC) > due_at
    await at(service, clock, resumed.due_at.ToDatetime(UTC))
    await eventually(lambda: _has(service, ticket_id, BREACH))
    assert (await clock_of(stub, ticket_id)).breached


async def test_answered_ticket_never_breaches(
    fast_sla: tuple[TicketingService, ticketing_pb2_grpc.TicketingServiceStub, FakeClock],
) -> None:
    service, stub, clock = fast_sla
    ticket_id = await open_chat(stub)
    due_at = (await clock_of(stub, ticket_id)).due_at.ToDatetime(UTC)
    await stub.AddReply(
        pb.AddReplyRequest(ticket_id=ticket_id, author=t.AUTHOR_AGENT, body="Checking now")
    )
    await at(service, clock, due_at + timedelta(seconds=1))
    assert BREACH not in await sla_types(service, ticket_id)
    first_response = await clock_of(stub, ticket_id)
    assert first_response.met and not first_response.running and not first_response.breached
