"""The SLA policy as live, versioned data (issue 13) on a running service (real NATS, injected
clock): a Put decides tickets opened after it, an open ticket keeps the version it was opened
under, apply_to_open moves the open tickets (timers rescheduled), bad documents append nothing.
No restart anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import careops_sla
import grpc
import pytest
import yaml
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.codec import from_timestamp
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_eventstore.sqlstate import timers
from sqlalchemy import select

from tests.support import FakeClock, channel_to, event_types, eventually
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService
from ticketing.tests.conftest import running_service
from ticketing.tests.test_grpc_api import violations

# Monday 2 March 2026, 10:00 in Shanghai: the office calendar (email) is open until 18:00.
MONDAY_10_CST = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
DEFAULT = Path(careops_sla.__file__).parent.joinpath("sla_default.yaml").read_text()
Stub = ticketing_pb2_grpc.TicketingServiceStub


def document(version: str, email_first_response: str) -> str:
    data = yaml.safe_load(DEFAULT)
    data["version"] = version
    data["channels"]["email"]["first_response"] = email_first_response
    return yaml.safe_dump(data)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[TicketingService, Stub, FakeClock]]:
    """A service on a NATS server of the test's own: each test starts at revision 1."""
    nats = EmbeddedNats(data_dir=tmp_path / "nats", port=free_port())
    nats.start()
    clock = FakeClock(MONDAY_10_CST)
    try:
        async with (
            running_service(tmp_path / "data", nats.url, clock=clock) as service,
            channel_to(service) as channel,
        ):
            yield service, ticketing_pb2_grpc.TicketingServiceStub(channel), clock
    finally:
        nats.stop()


async def open_email(stub: Stub) -> str:
    response = await stub.OpenTicket(
        pb.OpenTicketRequest(
            customer_id="C-13",
            channel=t.CHANNEL_EMAIL,
            type=t.TICKET_TYPE_CONSULTATION,
            priority=t.PRIORITY_NORMAL,
            subject="Invoice question",
        )
    )
    return str(response.ticket.ticket_id)


async def first_response(stub: Stub, ticket_id: str) -> tuple[pb.Ticket, t.SlaClockSnapshot]:
    ticket = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id))).ticket
    return ticket, next(c for c in ticket.sla if c.clock == t.SLA_CLOCK_FIRST_RESPONSE)


async def recorded_versions(service: TicketingService, ticket_id: str) -> list[tuple[str, str]]:
    """(event type, recorded SLA version) of every event of the ticket, in order."""
    assert service.store is not None
    messages = await service.store.read_subject(
        stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{ticket_id}"
    )
    return [
        (envelope.type.rsplit(".", 1)[-1], envelope.policy_versions["sla_policy"])
        for message in messages
        for envelope in message.batch.events
    ]


def breach_timer(service: TicketingService, ticket_id: str) -> datetime | None:
    """The due time of the ticket's first-response breach timer in the SLA timers table."""
    with service.engine.connect() as connection:
        rows = connection.execute(
            select(timers.c.timer_id, timers.c.due_at).where(timers.c.aggregate_id == ticket_id)
        ).all()
    due = [
        row.due_at
        for row in rows
        if row.timer_id.startswith(f"sla.{ticket_id}.first_response.breach.")
    ]
    return due[0].replace(tzinfo=UTC) if len(due) == 1 else None


async def test_a_put_applies_to_new_tickets_and_with_apply_to_open_to_open_ones(
    running: tuple[TicketingService, Stub, FakeClock],
) -> None:
    service, stub, clock = running
    seeded = (await stub.GetSlaPolicy(pb.GetSlaPolicyRequest())).policy
    assert (seeded.revision, seeded.version, seeded.author) == (1, "default-2026.1", "config")

    before = await open_email(stub)
    _, clock_before = await first_response(stub, before)
    assert clock_before.target.ToTimedelta() == timedelta(hours=4)

    put = await stub.PutSlaPolicy(
        pb.PutSlaPolicyRequest(document=document("email-2h", "2h"), reason="faster email")
    )
    assert (put.policy.revision, put.policy.version, put.policy.current) == (2, "email-2h", True)
    assert put.policy.author == "tester" and put.policy.reason == "faster email"

    # Opened after the Put: the new target, at once on this replica (no restart).
    after = await open_email(stub)
    ticket_after, clock_after = await first_response(stub, after)
    assert clock_after.target.ToTimedelta() == timedelta(hours=2)
    assert ticket_after.sla_policy_version == "email-2h"
    # Opened before: keeps its version for its next events.
    clock.advance(timedelta(minutes=30))
    await stub.EscalateTicket(pb.EscalateTicketRequest(ticket_id=before, reason="vip"))
    ticket_before, clock_before = await first_response(stub, before)
    assert clock_before.target.ToTimedelta() == timedelta(hours=4)
    assert ticket_before.sla_policy_version == "default-2026.1"
    assert await recorded_versions(service, before) == [
        ("TicketOpened", "default-2026.1"),
        ("TicketEscalated", "default-2026.1"),
    ]
    await eventually(lambda: breach_timer(service, before) == MONDAY_10_CST + timedelta(hours=4))

    # apply_to_open: both open tickets move to 1 h, consumed time kept, timers moved.
    applied = await stub.PutSlaPolicy(
        pb.PutSlaPolicyRequest(
            document=document("email-1h", "1h"), apply_to_open=True, expected_revision=2
        )
    )
    assert applied.policy.apply_to_open and applied.policy.revision == 3

    async def moved() -> bool:
        return ("SlaPolicyApplied", "email-1h") in await recorded_versions(service, before)

    await eventually(moved, what="the open ticket moved to email-1h")
    ticket_before, clock_before = await first_response(stub, before)
    assert ticket_before.sla_policy_version == "email-1h"
    assert clock_before.target.ToTimedelta() == timedelta(hours=1)
    assert clock_before.due_at.ToDatetime(UTC) == MONDAY_10_CST + timedelta(hours=1)
    assert clock_before.consumed.ToTimedelta() == timedelta(minutes=30)
    await eventually(
        lambda: breach_timer(service, before) == MONDAY_10_CST + timedelta(hours=1),
        what="the breach timer rescheduled (the old one cancelled)",
    )
    _, clock_after = await first_response(stub, after)
    assert clock_after.target.ToTimedelta() == timedelta(hours=1)

    # Its next event records the new version.
    await stub.EscalateTicket(pb.EscalateTicketRequest(ticket_id=before, reason="again"))
    assert (await recorded_versions(service, before))[-1] == ("TicketEscalated", "email-1h")
    assert (
        event_types(
            await service.store.read_subject(  # type: ignore[union-attr]
                stream=STREAM.name, subject=f"{SUBJECT_PREFIX}.{before}"
            )
        ).count("careops.ticketing.v1.SlaPolicyApplied")
        == 1
    )

    history = await stub.ListSlaPolicyVersions(pb.ListSlaPolicyVersionsRequest())
    assert [v.version for v in history.versions] == ["email-1h", "email-2h", "default-2026.1"]
    assert from_timestamp(history.versions[0].put_at) == clock.now


async def test_a_resolved_ticket_keeps_its_version_and_outcome(
    running: tuple[TicketingService, Stub, FakeClock],
) -> None:
    service, stub, clock = running
    ticket_id = await open_email(stub)
    clock.advance(timedelta(minutes=10))
    await stub.ResolveTicket(pb.ResolveTicketRequest(ticket_id=ticket_id, resolution="done"))
    await stub.PutSlaPolicy(
        pb.PutSlaPolicyRequest(document=document("email-5m", "5m"), apply_to_open=True)
    )
    await eventually(lambda: service.applier.handled > 0, what="the applier handled the Put")
    assert [kind for kind, _ in await recorded_versions(service, ticket_id)] == [
        "TicketOpened",
        "TicketResolved",
    ]
    ticket, _ = await first_response(stub, ticket_id)
    assert ticket.sla_policy_version == "default-2026.1"


async def test_bad_documents_are_located_and_append_nothing(
    running: tuple[TicketingService, Stub, FakeClock],
) -> None:
    service, stub, _clock = running
    assert service.store is not None
    last = await service.store.last_sequence(STREAM.name)
    bad = document("broken", "-1h")
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.PutSlaPolicy(pb.PutSlaPolicyRequest(document=bad))
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(invalid.value)) == ["document.channels.email.first_response"]

    data = yaml.safe_load(DEFAULT)
    data["version"] = "typed"
    data["type_resolution"] = {"gripe": "4h"}
    with pytest.raises(grpc.aio.AioRpcError) as unknown_type:
        await stub.PutSlaPolicy(pb.PutSlaPolicyRequest(document=yaml.safe_dump(data)))
    assert list(violations(unknown_type.value)) == ["document.type_resolution.gripe"]

    reused = document("default-2026.1", "3h")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.PutSlaPolicy(pb.PutSlaPolicyRequest(document=reused))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(refused.value)) == ["document.version"]
    assert await service.store.last_sequence(STREAM.name) == last

    unchanged = await stub.PutSlaPolicy(pb.PutSlaPolicyRequest(document=DEFAULT))
    assert unchanged.unchanged and unchanged.policy.revision == 1
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await stub.PutSlaPolicy(
            pb.PutSlaPolicyRequest(document=document("v9", "3h"), expected_revision=7)
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED
    assert await service.store.last_sequence(STREAM.name) == last
