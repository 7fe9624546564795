"""Complaint KPIs across contexts (issue 12 item 2): complaint steps recorded through ticketing's
API become quality's time to first acknowledgement, follow-up on time and re-complaint rate, in
GetKpis and in the Prometheus scrape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from careops.quality.v1 import quality_pb2 as qpb
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from google.protobuf.timestamp_pb2 import Timestamp
from quality.main import QualityService
from ticketing.main import TicketingService
from ticketing.projections import SlaTimerProjection

from tests.quality_scenario import Clock, stub_of, ticketing_and_quality
from tests.support import channel_to, eventually, fire_due_timers
from tests.test_quality_kpis import scrape

Stub = ticketing_pb2_grpc.TicketingServiceStub


@pytest.fixture
async def services(
    tmp_path: Path, read_model_url: str
) -> AsyncIterator[tuple[TicketingService, QualityService, Stub, Clock]]:
    clock = Clock()
    async with (
        ticketing_and_quality(tmp_path, clock=clock, quality_database_url=read_model_url) as (
            ticketing,
            quality,
        ),
        channel_to(ticketing) as channel,
    ):
        yield ticketing, quality, Stub(channel), clock


async def complaint(stub: Stub, customer: str) -> str:
    opened = await stub.OpenTicket(
        tpb.OpenTicketRequest(
            customer_id=customer,
            channel=tt.CHANNEL_PHONE,
            type=tt.TICKET_TYPE_COMPLAINT,
            priority=tt.PRIORITY_HIGH,
            subject="Rude technician",
        )
    )
    return str(opened.ticket.ticket_id)


async def steps_to_plan(stub: Stub, ticket_id: str, clock: Clock, follow_up: timedelta) -> None:
    def step(which: Any, **fields: Any) -> tpb.RecordComplaintStepRequest:
        return tpb.RecordComplaintStepRequest(ticket_id=ticket_id, step=which, **fields)

    await stub.RecordComplaintStep(step(tt.COMPLAINT_STEP_LISTEN, note="heard"))
    await stub.RecordComplaintStep(step(tt.COMPLAINT_STEP_CONFIRM, note="restated"))
    await stub.RecordComplaintStep(step(tt.COMPLAINT_STEP_APOLOGISE, note="sorry"))
    due = Timestamp()
    due.FromDatetime(clock.now + follow_up)
    await stub.RecordComplaintStep(
        step(tt.COMPLAINT_STEP_SOLVE, plan="new visit", options=["visit"], follow_up_at=due)
    )


async def test_complaint_kpis_in_get_kpis_and_the_scrape(
    services: tuple[TicketingService, QualityService, Stub, Clock],
) -> None:
    ticketing, quality, stub, clock = services
    first = await complaint(stub, "C-angry")
    clock.advance(timedelta(minutes=10))  # acknowledged after 600 s
    await steps_to_plan(stub, first, clock, timedelta(hours=1))
    await stub.RecordComplaintStep(
        tpb.RecordComplaintStepRequest(
            ticket_id=first, step=tt.COMPLAINT_STEP_FOLLOW_UP, outcome="told"
        )
    )
    second = await complaint(stub, "C-angry")  # the same customer again: a re-complaint
    clock.advance(timedelta(minutes=20))  # acknowledged after 1200 s
    await steps_to_plan(stub, second, clock, timedelta(hours=1))
    clock.advance(timedelta(hours=2))
    await fire_due_timers(ticketing, SlaTimerProjection.name)  # missed: not on time
    await complaint(stub, "C-calm")  # not acknowledged yet
    last = await ticketing.store.last_sequence("CAREOPS_TICKETING")  # type: ignore[union-attr]

    async def kpis() -> qpb.ComplaintKpis:
        async with stub_of(quality) as quality_stub:
            request = qpb.GetKpisRequest(ticketing_min_sequence=last)
            return (await quality_stub.GetKpis(request)).complaint

    async def missed_counted() -> qpb.ComplaintKpis | None:
        value = await kpis()
        return value if value.follow_ups_due == 2 else None

    result = await eventually(missed_counted)
    assert (result.complaints, result.acknowledged) == (3, 2)
    assert result.mean_acknowledge_seconds == pytest.approx(900.0)
    assert (result.follow_ups_due, result.follow_ups_on_time) == (2, 1)
    assert result.follow_up_on_time_ratio == pytest.approx(0.5)
    assert result.recomplaints == 1
    assert result.recomplaint_ratio == pytest.approx(1 / 3)
    scraped = scrape(quality)
    assert scraped[("careops_quality_complaints", (("kpi", "recomplaints"),))] == 1.0
    assert scraped[("careops_quality_complaints", (("kpi", "follow_ups_on_time"),))] == 1.0
