"""The complaint procedure through gRPC (issue 12 item 2): six ordered steps, a committed
follow-up fired by the timer mechanism on a FakeClock (a missed one escalates), and closing only
with an outcome and a summary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from careops.ticketing.v1 import ticketing_pb2 as pb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from google.protobuf.timestamp_pb2 import Timestamp

from tests.support import FakeClock, channel_to, event_types, eventually, fire_due_timers
from ticketing.application import STREAM, SUBJECT_PREFIX
from ticketing.main import TicketingService
from ticketing.projections import SlaTimerProjection
from ticketing.tests.conftest import running_service

Stub = ticketing_pb2_grpc.TicketingServiceStub
MISSED = "careops.ticketing.v1.ComplaintFollowUpMissed"
ESCALATED = "careops.ticketing.v1.TicketEscalated"


@pytest.fixture
async def desk(
    tmp_path: Path, module_nats: EmbeddedNats
) -> AsyncIterator[tuple[TicketingService, Stub, FakeClock]]:
    clock = FakeClock()
    async with (
        running_service(tmp_path / "data", module_nats.url, clock=clock) as service,
        channel_to(service) as channel,
    ):
        yield service, Stub(channel), clock


async def open_complaint(
    stub: Stub, ticket_type: t.TicketType.ValueType = t.TICKET_TYPE_COMPLAINT
) -> str:
    response = await stub.OpenTicket(
        pb.OpenTicketRequest(
            customer_id="C-7",
            channel=t.CHANNEL_PHONE,
            type=ticket_type,
            priority=t.PRIORITY_HIGH,
            subject="The technician never came",
        )
    )
    return str(response.ticket.ticket_id)


def step(ticket_id: str, which: int, **fields: object) -> pb.RecordComplaintStepRequest:
    return pb.RecordComplaintStepRequest(ticket_id=ticket_id, step=which, **fields)  # type: ignore[arg-type]


def stamp(at: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at)
    return value


async def types_of(service: TicketingService, ticket_id: str) -> list[str]:
    assert service.store is not None
    subject = f"{SUBJECT_PREFIX}.{ticket_id}"
    return event_types(await service.store.read_subject(stream=STREAM.name, subject=subject))


async def first_four(stub: Stub, ticket_id: str, follow_up_at: datetime) -> pb.Ticket:
    """Acknowledges, restates, apologises and commits to a plan with a follow-up time."""
    await stub.RecordComplaintStep(step(ticket_id, t.COMPLAINT_STEP_LISTEN, note="heard it all"))
    await stub.RecordComplaintStep(
        step(ticket_id, t.COMPLAINT_STEP_CONFIRM, note="no visit on the booked day")
    )
    await stub.RecordComplaintStep(step(ticket_id, t.COMPLAINT_STEP_APOLOGISE, note="sorry"))
    solved = await stub.RecordComplaintStep(
        step(
            ticket_id,
            t.COMPLAINT_STEP_SOLVE,
            plan="senior technician tomorrow 9-11",
            options=["visit tomorrow", "replacement unit"],
            follow_up_at=stamp(follow_up_at),
        )
    )
    return solved.ticket


async def test_a_late_follow_up_escalates_and_a_complaint_closes_only_with_a_summary(
    desk: tuple[TicketingService, Stub, FakeClock],
) -> None:
    service, stub, clock = desk
    ticket_id = await open_complaint(stub)
    follow_up_at = clock.now + timedelta(hours=4)
    ticket = await first_four(stub, ticket_id, follow_up_at)
    assert [s.step for s in ticket.complaint_steps] == [
        t.COMPLAINT_STEP_LISTEN,
        t.COMPLAINT_STEP_CONFIRM,
        t.COMPLAINT_STEP_APOLOGISE,
        t.COMPLAINT_STEP_SOLVE,
    ]
    assert {s.by for s in ticket.complaint_steps} == {"tester"}
    assert list(ticket.complaint_steps_left) == [
        t.COMPLAINT_STEP_FOLLOW_UP,
        t.COMPLAINT_STEP_SUMMARISE,
    ]
    assert ticket.follow_up_due_at.ToDatetime(UTC) == follow_up_at

    clock.set(follow_up_at - timedelta(milliseconds=1))
    await fire_due_timers(service, SlaTimerProjection.name)
    assert MISSED not in await types_of(service, ticket_id), "nothing before the committed time"

    clock.set(follow_up_at + timedelta(minutes=30))
    await fire_due_timers(service, SlaTimerProjection.name)

    async def escalated() -> bool:
        kinds = await types_of(service, ticket_id)
        return MISSED in kinds and ESCALATED in kinds

    await eventually(escalated)
    ticket = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id))).ticket
    assert ticket.follow_up_missed and ticket.escalation_level == 1

    followed = await stub.RecordComplaintStep(
        step(ticket_id, t.COMPLAINT_STEP_FOLLOW_UP, outcome="unit replaced; customer told")
    )
    assert followed.ticket.complaint_steps[-1].late
    await stub.ResolveTicket(pb.ResolveTicketRequest(ticket_id=ticket_id, resolution="replaced"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CloseTicket(pb.CloseTicketRequest(ticket_id=ticket_id))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "summarise" in str(refused.value.details())

    await stub.RecordComplaintStep(
        step(
            ticket_id,
            t.COMPLAINT_STEP_SUMMARISE,
            root_cause="dispatch lost the booking",
            prevention="bookings confirmed by SMS the day before",
            shared=True,
        )
    )
    closed = await stub.CloseTicket(pb.CloseTicketRequest(ticket_id=ticket_id))
    assert closed.ticket.status == t.TICKET_STATUS_CLOSED
    # The escalation is one event, however often the scheduler runs afterwards.
    await fire_due_timers(service, SlaTimerProjection.name)
    assert (await types_of(service, ticket_id)).count(MISSED) == 1


async def test_an_on_time_follow_up_does_not_escalate(
    desk: tuple[TicketingService, Stub, FakeClock],
) -> None:
    service, stub, clock = desk
    ticket_id = await open_complaint(stub)
    follow_up_at = clock.now + timedelta(hours=4)
    await first_four(stub, ticket_id, follow_up_at)
    clock.set(follow_up_at - timedelta(minutes=5))
    followed = await stub.RecordComplaintStep(
        step(ticket_id, t.COMPLAINT_STEP_FOLLOW_UP, outcome="visit done; customer told")
    )
    assert not followed.ticket.complaint_steps[-1].late
    clock.set(follow_up_at + timedelta(hours=1))
    await fire_due_timers(service, SlaTimerProjection.name)
    assert MISSED not in await types_of(service, ticket_id)
    assert ESCALATED not in await types_of(service, ticket_id)


async def test_steps_are_validated_in_order_and_by_their_fields(
    desk: tuple[TicketingService, Stub, FakeClock],
) -> None:
    _service, stub, clock = desk
    ticket_id = await open_complaint(stub)

    async def refused(request: pb.RecordComplaintStepRequest) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.RecordComplaintStep(request)
        return error.value

    early = await refused(step(ticket_id, t.COMPLAINT_STEP_APOLOGISE, note="sorry"))
    assert early.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "listen" in str(early.details())
    empty = await refused(step(ticket_id, t.COMPLAINT_STEP_LISTEN))
    assert empty.code() is grpc.StatusCode.INVALID_ARGUMENT
    unspecified = await refused(step(ticket_id, t.COMPLAINT_STEP_UNSPECIFIED, note="x"))
    assert unspecified.code() is grpc.StatusCode.INVALID_ARGUMENT
    await stub.RecordComplaintStep(step(ticket_id, t.COMPLAINT_STEP_LISTEN, note="heard"))
    await stub.RecordComplaintStep(step(ticket_id, t.COMPLAINT_STEP_CONFIRM, note="restated"))
    await stub.RecordComplaintStep(step(ticket_id, t.COMPLAINT_STEP_APOLOGISE, note="sorry"))
    no_time = await refused(
        step(ticket_id, t.COMPLAINT_STEP_SOLVE, plan="visit", options=["visit"])
    )
    assert no_time.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "follow_up_at" in str(no_time.details())
    past = clock.now - timedelta(minutes=1)
    no_options = await refused(
        step(ticket_id, t.COMPLAINT_STEP_SOLVE, plan="visit", follow_up_at=stamp(past))
    )
    assert no_options.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "options" in str(no_options.details())
    again = await refused(step(ticket_id, t.COMPLAINT_STEP_LISTEN, note="again"))
    assert again.code() is grpc.StatusCode.FAILED_PRECONDITION

    fault = await open_complaint(stub, t.TICKET_TYPE_FAULT)
    not_complaint = await refused(step(fault, t.COMPLAINT_STEP_LISTEN, note="heard"))
    assert not_complaint.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_other_types_tick_their_checklist_with_who_and_when(
    desk: tuple[TicketingService, Stub, FakeClock],
) -> None:
    _service, stub, _clock = desk
    ticket_id = await open_complaint(stub, t.TICKET_TYPE_FAULT)
    opened = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id))).ticket
    assert [(i.item, i.done) for i in opened.checklist] == [
        ("record_symptom", False),
        ("diagnose", False),
        ("decide_route", False),
        ("repair", False),
    ]
    ticked = await stub.TickChecklistItem(
        pb.TickChecklistItemRequest(ticket_id=ticket_id, item="diagnose", note="fault code E4")
    )
    diagnose = ticked.ticket.checklist[1]
    assert (diagnose.done, diagnose.by, diagnose.note) == (True, "tester", "fault code E4")
    assert diagnose.HasField("at")
    assert [i.item for i in ticked.ticket.checklist if not i.done] == [
        "record_symptom",
        "decide_route",
        "repair",
    ]
    for item, code in (("refund", grpc.StatusCode.INVALID_ARGUMENT), ("diagnose", None)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.TickChecklistItem(
                pb.TickChecklistItemRequest(ticket_id=ticket_id, item=item)
            )
        assert error.value.code() is (code or grpc.StatusCode.FAILED_PRECONDITION)

    complaint = await open_complaint(stub)
    shown = (await stub.GetTicket(pb.GetTicketRequest(ticket_id=complaint))).ticket
    assert not shown.checklist
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.TickChecklistItem(pb.TickChecklistItemRequest(ticket_id=complaint, item="guide"))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
