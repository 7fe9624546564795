"""Pause accountability across contexts (issue 13 item 4): tickets held and resumed through
ticketing's API at known instants of one injected clock (chat, normal priority: a 24x7 calendar,
first response 30 min, resolution 24 h) give quality's holds, pause report, KPIs and Prometheus
series their exact figures, including a pause right before a breach and a reason that pauses
nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from careops.quality.v1 import quality_pb2 as qpb
from careops.ticketing.v1 import ticketing_pb2 as tpb
from careops.ticketing.v1 import ticketing_pb2_grpc
from careops.ticketing.v1 import types_pb2 as tt
from careops_eventstore.codec import to_timestamp
from careops_platform.identity import Principal
from gateway.tests.conftest import address
from quality.main import QualityService
from ticketing.main import TicketingService

from tests.quality_scenario import T0, Clock, stub_of, ticketing_and_quality
from tests.support import channel_to
from tests.test_cli_gateway import careops, local_gateway
from tests.test_quality_kpis import scrape

WANG = Principal("agent-wang", frozenset({"agent"}), "tests")
LEAD = Principal("lead-1", frozenset({"supervisor"}), "tests")
CUSTOMER = tt.HOLD_REASON_WAITING_CUSTOMER
THIRD_PARTY = tt.HOLD_REASON_WAITING_THIRD_PARTY
INTERNAL = tt.HOLD_REASON_WAITING_INTERNAL


@pytest.fixture(scope="module")
async def services(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[TicketingService, QualityService, Clock]]:
    clock = Clock()
    async with ticketing_and_quality(tmp_path_factory.mktemp("pauses"), clock=clock) as both:
        yield (*both, clock)


async def call(service: TicketingService, who: Principal | None, method: str, request: Any) -> Any:
    async with channel_to(service, who) if who else channel_to(service) as channel:
        stub = ticketing_pb2_grpc.TicketingServiceStub(channel)
        return await getattr(stub, method)(
            request, metadata=(("idempotency-key", uuid.uuid4().hex),)
        )


async def chat_ticket(service: TicketingService, agent: str) -> str:
    opened = await call(
        service,
        None,
        "OpenTicket",
        tpb.OpenTicketRequest(
            customer_id="C-pause",
            channel=tt.CHANNEL_CHAT,
            type=tt.TICKET_TYPE_FAULT,
            priority=tt.PRIORITY_NORMAL,
            subject="Router down",
        ),
    )
    ticket_id: str = opened.ticket.ticket_id
    await call(
        service, None, "AssignTicket", tpb.AssignTicketRequest(ticket_id=ticket_id, agent_id=agent)
    )
    return ticket_id


def hold(ticket_id: str, reason: tt.HoldReason.ValueType) -> tpb.HoldTicketRequest:
    return tpb.HoldTicketRequest(ticket_id=ticket_id, reason=reason, note="waiting")


def figures(row: qpb.PauseRow) -> tuple[Any, ...]:
    return (
        row.holds,
        row.open_holds,
        row.tickets,
        row.handled_tickets,
        round(row.ticket_share, 6),
        row.first_response_paused_seconds,
        row.resolution_paused_seconds,
        row.pauses_before_breach,
    )


async def test_holds_give_the_report_kpis_and_metrics_their_exact_figures(
    services: tuple[TicketingService, QualityService, Clock],
) -> None:
    ticketing, quality, clock = services
    clock.at(minutes=0)
    a, b, c, d = [await chat_ticket(ticketing, WANG.subject) for _ in range(4)]
    e = await chat_ticket(ticketing, "agent-li")
    # C: answered at 5 min, held at 10, resolved while held at 70: resolution paused 3600 s.
    clock.at(minutes=5)
    await call(
        ticketing,
        WANG,
        "AddReply",
        tpb.AddReplyRequest(ticket_id=c, author=tt.AUTHOR_AGENT, body="Restart it, please"),
    )
    clock.at(minutes=10)
    await call(ticketing, WANG, "HoldTicket", hold(c, CUSTOMER))
    # B: waiting for a third party pauses nothing: paused 0 however long.
    await call(ticketing, WANG, "HoldTicket", hold(b, THIRD_PARTY))
    # A: waiting for the customer 25 min in (25/30 of first response used: right before a
    # breach), resumed 30 min later: both clocks paused 1800 s.
    clock.at(minutes=25)
    await call(ticketing, WANG, "HoldTicket", hold(a, CUSTOMER))
    clock.at(minutes=40)
    await call(ticketing, WANG, "ResumeTicket", tpb.ResumeTicketRequest(ticket_id=b))
    clock.at(minutes=55)
    await call(ticketing, WANG, "ResumeTicket", tpb.ResumeTicketRequest(ticket_id=a))
    clock.at(minutes=70)
    await call(ticketing, WANG, "ResolveTicket", tpb.ResolveTicketRequest(ticket_id=c))
    # E: li's ticket, held by their lead and still held.
    await call(ticketing, LEAD, "HoldTicket", hold(e, INTERNAL))
    last = await ticketing.store.last_sequence("CAREOPS_TICKETING")  # type: ignore[union-attr]
    period = qpb.Period(start=to_timestamp(T0), end=to_timestamp(T0 + timedelta(hours=3)))

    async with stub_of(quality) as stub:
        report = await stub.GetPauseReport(
            qpb.GetPauseReportRequest(period=period, ticketing_min_sequence=last)
        )
        holds_of_a = await stub.ListHolds(qpb.ListHoldsRequest(ticket_id=a))
        first_page = await stub.ListHolds(qpb.ListHoldsRequest(agent_id=WANG.subject, page_size=2))
        second_page = await stub.ListHolds(
            qpb.ListHoldsRequest(
                agent_id=WANG.subject, page_size=2, page_token=first_page.next_page_token
            )
        )
        kpis = await stub.GetKpis(qpb.GetKpisRequest(period=period))

    assert {(r.agent_id, r.reason): figures(r) for r in report.rows} == {
        ("agent-wang", CUSTOMER): (2, 0, 2, 4, 0.5, 1800.0, 5400.0, 1),
        ("agent-wang", THIRD_PARTY): (1, 0, 1, 4, 0.25, 0.0, 0.0, 0),
        ("lead-1", INTERNAL): (1, 1, 1, 1, 1.0, 0.0, 0.0, 0),
    }
    assert [(r.reason, figures(r)) for r in report.totals] == [
        (CUSTOMER, (2, 0, 2, 5, 0.4, 1800.0, 5400.0, 1)),
        (THIRD_PARTY, (1, 0, 1, 5, 0.2, 0.0, 0.0, 0)),
        (INTERNAL, (1, 1, 1, 5, 0.2, 0.0, 0.0, 0)),
    ]
    assert list(kpis.pauses) == list(report.totals)

    [held] = holds_of_a.holds
    assert (held.held_by, held.reason, held.pausing, held.ended_by) == (
        "agent-wang",
        CUSTOMER,
        True,
        "resumed",
    )
    assert held.ended_at.ToDatetime() - held.held_at.ToDatetime() == timedelta(minutes=30)
    first, resolution = held.clocks
    assert (first.paused, round(first.consumed_share, 6), first.before_breach) == (
        True,
        round(25 / 30, 6),
        True,
    )
    assert (first.paused_seconds, resolution.paused_seconds) == (1800.0, 1800.0)
    assert not resolution.before_breach
    assert [h.ticket_id for h in first_page.holds] == [a, b] and first_page.next_page_token
    assert [h.ticket_id for h in second_page.holds] == [c] and not second_page.next_page_token
    assert d not in {h.ticket_id for h in [*first_page.holds, *second_page.holds]}

    samples = scrape(quality)
    paused = "careops_quality_sla_paused_seconds_total"
    before = "careops_quality_sla_pauses_before_breach_total"
    assert samples[(paused, (("clock", "resolution"), ("reason", "waiting_customer")))] == 5400
    assert samples[(paused, (("clock", "first_response"), ("reason", "waiting_customer")))] == 1800
    assert samples[(paused, (("clock", "resolution"), ("reason", "waiting_third_party")))] == 0
    assert samples[(before, (("reason", "waiting_customer"),))] == 1
    assert samples[(before, (("reason", "waiting_internal"),))] == 0
    assert samples[("careops_quality_holds_total", (("reason", "waiting_internal"),))] == 1


async def test_the_cli_shows_the_report_and_holds_to_supervisors_only(
    services: tuple[TicketingService, QualityService, Clock],
) -> None:
    _ticketing, quality, _clock = services
    # The gateway signs what it forwards with a key the services trust: their data directory's.
    data_dir = Path(quality.settings.data_dir)
    async with local_gateway(data_dir, quality=address(quality)) as gateway:  # type: ignore[arg-type]
        env = {"CAREOPS_GATEWAY_ADDR": address(gateway)}
        tokens = {}
        for role, subject in (("supervisor", "lead-1"), ("agent", "agent-wang")):
            issued = await careops(
                "token", "issue", "--role", role, "--subject", subject,
                "--data-dir", str(data_dir),
            )  # fmt: skip
            assert issued.exit_code == 0, issued.output
            tokens[role] = issued.stdout.strip()
        lead = {**env, "CAREOPS_TOKEN": tokens["supervisor"]}
        report = await careops(
            "kpi", "pauses", "--agent", "agent-wang", "--days", "1", "--json", **lead
        )
        table = await careops("kpi", "pauses", "--days", "1", **lead)
        holds = await careops("kpi", "holds", "--agent", "agent-wang", "--json", **lead)
        denied = await careops("kpi", "pauses", **env, CAREOPS_TOKEN=tokens["agent"])
    assert report.exit_code == 0, report.output
    rows = json.loads(report.stdout)["rows"]
    assert [(r["reason"], r["holds"], r.get("resolution_paused_seconds", 0.0)) for r in rows] == [
        ("HOLD_REASON_WAITING_CUSTOMER", "2", 5400.0),
        ("HOLD_REASON_WAITING_THIRD_PARTY", "1", 0.0),
    ]
    assert table.exit_code == 0 and "pauses, last 1 days" in table.stdout, table.output
    assert holds.exit_code == 0, holds.output
    assert len(json.loads(holds.stdout)["holds"]) == 3
    assert denied.exit_code == 1 and "quality.pause_report.read" in denied.stderr, denied.output
