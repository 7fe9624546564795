"""Drills over real gRPC and NATS: a scheduled drill fires when the injected clock passes its
time, declares a drill incident that pages the local receivers for real, and its report says
exactly which targets were met; drills never reach the incident KPIs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_platform.identity import Principal
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from incident import readmodels
from incident.main import IncidentService
from incident.projections import DrillProjection, IncidentProjection, IncidentTimerProjection
from incident.tests.test_paging import acknowledge, key
from tests.receivers import HttpReceiver, MailReceiver
from tests.support import FakeClock, channel_to, fire_due_timers, projected

# The module's service runs on SQLite, then on PostgreSQL (conftest.py).
pytestmark = pytest.mark.both_databases

Stub = incident_pb2_grpc.IncidentServiceStub
TIMERS = IncidentTimerProjection.name


def at(clock: FakeClock, delta: timedelta) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(clock() + delta)
    return stamp


def open_counts(service: IncidentService) -> dict[str, int]:
    with Session(service.engine) as session:
        return readmodels.open_counts(session=session)


def acks_observed() -> float:
    """The incident KPI histogram's observations over all series (drills are never in it)."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "careops_incident_time_to_acknowledge_seconds"
        for sample in metric.samples
        if sample.name.endswith("_count")
    )


async def test_a_scheduled_drill_fires_at_its_time_pages_for_real_and_reports_exactly(
    incident_stub: Stub,
    incident_service: IncidentService,
    incident_clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, _ = receivers
    scheduled = await incident_stub.ScheduleDrill(
        pb.ScheduleDrillRequest(
            scenario_id="multi_channel_outage",
            at=at(incident_clock, timedelta(hours=1)),
            recurrence=t.DRILL_RECURRENCE_QUARTERLY,
        ),
        metadata=key(),
    )
    drill = scheduled.drill
    assert drill.status == pb.DRILL_STATUS_SCHEDULED
    assert [(x.kind, x.target, x.fraction) for x in drill.scenario.targets] == [
        (t.DRILL_TARGET_KIND_JOINT_RESPONSE, 120, 1)
    ]
    listed = await incident_stub.ListDrills(pb.ListDrillsRequest(min_sequence=scheduled.sequence))
    assert drill.drill_id in [item.drill_id for item in listed.drills]
    open_before, acks_before = open_counts(incident_service), acks_observed()

    # Not yet due: nothing is declared.
    incident_clock.advance(timedelta(hours=1) - timedelta(milliseconds=1))
    await fire_due_timers(incident_service, TIMERS)
    with pytest.raises(grpc.aio.AioRpcError) as absent:
        await incident_stub.GetDrillReport(pb.GetDrillReportRequest(drill_id=drill.drill_id))
    assert absent.value.code() == grpc.StatusCode.NOT_FOUND

    incident_clock.advance(timedelta(milliseconds=1))
    await fire_due_timers(incident_service, TIMERS)
    declared_at = incident_clock()
    incident_id = f"{drill.drill_id}-r0"
    incident = await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    assert incident.incident.drill and incident.incident.level == t.INCIDENT_LEVEL_A

    # Paged for real, marked as a drill.
    def page_for(path: str) -> dict[str, object]:
        posts = http.wait_for(path, 1)
        mine = [p.json() for p in posts if p.json().get("incident_id") == incident_id]
        assert mine, f"no page for {incident_id} on {path}"
        return mine[0]  # type: ignore[no-any-return]

    body = await asyncio.to_thread(page_for, "/ts-alice")
    assert body["drill"] is True and body["action"] == "trigger"

    # The next quarterly run is scheduled; the drill read model shows it.
    await projected(incident_service, DrillProjection.name)
    listed = await incident_stub.ListDrills(pb.ListDrillsRequest())
    summary = next(item for item in listed.drills if item.drill_id == drill.drill_id)
    assert (summary.runs, summary.last_incident_id) == (1, incident_id)
    assert summary.next_due_at.ToDatetime().month == (declared_at.month + 2) % 12 + 1

    # Technical support acknowledges after 10 minutes, customer service after 130: missed.
    pages = {p.team_id: p for p in incident.incident.pages}
    incident_clock.set(declared_at + timedelta(minutes=10))
    await acknowledge(incident_service, pages["technical_support"].page_id, "ts-alice")
    pending = await incident_stub.GetDrillReport(pb.GetDrillReportRequest(drill_id=drill.drill_id))
    assert pending.targets[0].outcome == pb.DRILL_OUTCOME_PENDING
    assert pending.targets[0].note == "waiting for customer_service"
    incident_clock.set(declared_at + timedelta(minutes=130))
    await acknowledge(incident_service, pages["customer_service"].page_id, "cs-carol")

    report = await incident_stub.GetDrillReport(
        pb.GetDrillReportRequest(drill_id=drill.drill_id, incident_id=incident_id)
    )
    assert [(team.team_id, team.minutes) for team in report.teams] == [
        ("technical_support", 10.0),
        ("customer_service", 130.0),
    ]
    target = report.targets[0]
    assert (target.bar, target.achieved, target.unit, target.outcome) == (
        120,
        130.0,
        "minutes",
        pb.DRILL_OUTCOME_MISSED,
    )
    assert not report.met

    # The drill counts in no incident KPI.
    await projected(incident_service, IncidentProjection.name)
    assert open_counts(incident_service) == open_before
    assert acks_observed() == acks_before
    declared = REGISTRY.get_sample_value(
        "careops_incidents_declared_total",
        {"level": "A", "type": "server_crash", "drill": "true"},
    )
    assert declared and declared >= 1

    cancelled = await incident_stub.CancelDrill(
        pb.CancelDrillRequest(drill_id=drill.drill_id, reason="exercise over"), metadata=key()
    )
    assert cancelled.drill.status == pb.DRILL_STATUS_CANCELLED
    listed = await incident_stub.ListDrills(pb.ListDrillsRequest(min_sequence=cancelled.sequence))
    assert drill.drill_id not in [item.drill_id for item in listed.drills]


async def test_run_now_and_a_recorded_reputation_figure(incident_stub: Stub) -> None:
    # campaign_crisis's type is not in the test matrix: the scenario is put with one that is.
    scenarios = (await incident_stub.GetDrillScenarios(pb.GetDrillScenariosRequest())).scenarios
    assert {s.scenario_id for s in scenarios} >= {
        "single_point_failure",
        "campaign_crisis",
        "multi_channel_outage",
    }
    campaign = next(s for s in scenarios if s.scenario_id == "campaign_crisis")
    campaign.incident_type = "complaint_surge"
    await incident_stub.PutDrillScenarios(
        pb.PutDrillScenariosRequest(scenarios=scenarios), metadata=key()
    )
    ran = await incident_stub.RunDrill(
        pb.RunDrillRequest(scenario_id="campaign_crisis"), metadata=key()
    )
    assert ran.incident.drill and ran.drill.status == pb.DRILL_STATUS_DONE
    drill_id = ran.drill.drill_id
    report = await incident_stub.GetDrillReport(pb.GetDrillReportRequest(drill_id=drill_id))
    assert report.targets[0].outcome == pb.DRILL_OUTCOME_PENDING
    await incident_stub.RecordDrillFigure(
        pb.RecordDrillFigureRequest(
            drill_id=drill_id, kind=t.DRILL_TARGET_KIND_REPUTATION_RECOVERY, value=0.9
        ),
        metadata=key(),
    )
    report = await incident_stub.GetDrillReport(pb.GetDrillReportRequest(drill_id=drill_id))
    assert (report.targets[0].achieved, report.targets[0].bar) == (0.9, 0.85)
    assert report.met


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.ScheduleDrillRequest(scenario_id="nope"), {"scenario_id", "at"}),
        (pb.ScheduleDrillRequest(scenario_id="single_point_failure"), {"at", "scenario_id"}),
    ],
)
async def test_schedule_drill_validates(
    incident_stub: Stub, request_: pb.ScheduleDrillRequest, fields: set[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await incident_stub.ScheduleDrill(request_, metadata=key())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for name in fields:
        assert name in (refused.value.details() or "")


async def test_on_call_staff_schedule_only_drills_of_teams_they_lead(
    incident_service: IncidentService, incident_clock: FakeClock
) -> None:
    request = pb.ScheduleDrillRequest(
        scenario_id="multi_channel_outage", at=at(incident_clock, timedelta(days=1))
    )
    member = Principal(f"ts-bob-{uuid.uuid4().hex[:4]}", frozenset({"oncall"}))
    async with channel_to(incident_service, member) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Stub(channel).ScheduleDrill(request, metadata=key())
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "incident.drill.schedule" in (refused.value.details() or "")
    lead = Principal("ts-lead", frozenset({"oncall"}))  # technical support's manager
    async with channel_to(incident_service, lead) as channel:
        reply = await Stub(channel).ScheduleDrill(request, metadata=key())
    assert reply.drill.status == pb.DRILL_STATUS_SCHEDULED
