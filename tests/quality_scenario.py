"""A scripted quality scenario: tickets, replies, holds, reopenings, SLA breaches, incidents and
surveys at fixed instants, with every KPI computed by hand (docs/kpis.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops_eventstore.jetstream import JetStreamEventStore
from careops_sla import default_policy
from incident import domain as inc
from incident.application import IncidentApp
from quality.main import QualityService, QualitySettings
from ticketing import domain as tk
from ticketing.application import TicketingApp

from tests.support import FakeClock

T0 = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)
NOW = T0 + timedelta(hours=6)


class Clock(FakeClock):
    """The shared FakeClock, starting at the scenario's T0, set by offsets from it."""

    def __init__(self, start: datetime = T0) -> None:
        super().__init__(start)

    def at(self, **delta: float) -> Clock:
        self.now = T0 + timedelta(**delta)
        return self


@asynccontextmanager
async def quality_service(
    data_dir: Path, nats_url: str, clock: Clock, **overrides: Any
) -> AsyncIterator[QualityService]:
    """Starts QualityService in-process on free ports with the given clock."""
    settings = QualitySettings(
        nats_url=nats_url,
        data_dir=str(data_dir),
        grpc_port=0,
        metrics_port=0,
        timer_interval_seconds=0.1,
        shutdown_grace_seconds=0,
        **overrides,
    )
    service = QualityService(settings, clock=clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@asynccontextmanager
async def stub_of(service: QualityService) -> AsyncIterator[quality_pb2_grpc.QualityServiceStub]:
    assert service.server is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
        yield quality_pb2_grpc.QualityServiceStub(channel)


SEVERE = inc.RiskFactors(
    users_affected=200_000,
    core_system=1.0,
    elapsed_minutes=30,
    average_handling_minutes=30,
    exposure=0.6,
)


@dataclass
class Positions:
    """The last sequence of each stream after the scenario."""

    ticketing: int = 0
    incident: int = 0
    quality: int = 0


async def write_tickets(store: JetStreamEventStore, clock: Clock) -> int:
    """Four tickets (A, B, C, D) whose KPIs docs/kpis.md computes by hand in the test."""
    app = TicketingApp(store=store, policy=default_policy(), clock=clock)
    await app.provision()
    steps: list[tuple[float, str, tk.Command]] = [
        # A: chat consultation, first response 10 min, resolved at first contact after 1 h.
        (
            0,
            "T-A",
            tk.OpenTicket(
                "T-A", "C-1", tk.Channel.CHAT, tk.TicketType.CONSULTATION, tk.Priority.NORMAL, "A"
            ),
        ),
        (1, "T-A", tk.AssignTicket("agent-li")),
        (10, "T-A", tk.AddReply(tk.Author.AGENT, "agent-li", "hello")),
        (60, "T-A", tk.ResolveTicket("done")),
        # B: chat complaint, high (first response target 15 min): breached, answered at 30 min,
        # on hold for the customer 1 h, resolved at 3 h, reopened at 4 h, resolved at 4.5 h.
        (
            0,
            "T-B",
            tk.OpenTicket(
                "T-B", "C-2", tk.Channel.CHAT, tk.TicketType.COMPLAINT, tk.Priority.HIGH, "B"
            ),
        ),
        (1, "T-B", tk.AssignTicket("agent-zhang")),
        (20, "T-B", tk.FireSlaTimer(tk.SlaClock.FIRST_RESPONSE, tk.SlaTimerKind.BREACH)),
        (30, "T-B", tk.AddReply(tk.Author.AGENT, "agent-zhang", "sorry")),
        (40, "T-B", tk.AddReply(tk.Author.AGENT, "agent-zhang", "details")),
        (60, "T-B", tk.HoldTicket(tk.HoldReason.WAITING_CUSTOMER)),
        (120, "T-B", tk.ResumeTicket()),
        (180, "T-B", tk.ResolveTicket("fixed")),
        (240, "T-B", tk.ReopenTicket("not fixed")),
        (270, "T-B", tk.ResolveTicket("fixed again")),
        # C: app fault opened at 1 h, escalated, never answered: first response breached.
        (
            60,
            "T-C",
            tk.OpenTicket(
                "T-C", "C-3", tk.Channel.APP, tk.TicketType.FAULT, tk.Priority.NORMAL, "C"
            ),
        ),
        (61, "T-C", tk.AssignTicket("agent-wang")),
        (70, "T-C", tk.EscalateTicket("needs tier 2")),
        (91, "T-C", tk.FireSlaTimer(tk.SlaClock.FIRST_RESPONSE, tk.SlaTimerKind.BREACH)),
        # D: chat consultation at 2 h, answered in 5 min, resolved in 20 min, closed.
        (
            120,
            "T-D",
            tk.OpenTicket(
                "T-D", "C-4", tk.Channel.CHAT, tk.TicketType.CONSULTATION, tk.Priority.NORMAL, "D"
            ),
        ),
        (121, "T-D", tk.AssignTicket("agent-li")),
        (125, "T-D", tk.AddReply(tk.Author.AGENT, "agent-li", "here you go")),
        (140, "T-D", tk.ResolveTicket("answered")),
        (150, "T-D", tk.CloseTicket()),
    ]
    sequence = 0
    for index, (minutes, ticket_id, command) in enumerate(sorted(steps, key=lambda step: step[0])):
        clock.at(minutes=minutes)
        result = await app.execute(ticket_id, command, command_id=f"scenario-{index}")
        assert result.events, (ticket_id, command)
        sequence = max(sequence, result.sequence)
    return sequence


async def write_incidents(store: JetStreamEventStore, clock: Clock) -> int:
    """A level-A incident acknowledged after 10 min and resolved after 1 h, and a drill."""
    app = IncidentApp(store=store, clock=clock)
    await app.provision()
    await app.load_defaults(oncall_file=None, matrix_file=None)
    sequence = 0
    for incident_id, drill in (("I-real", False), ("I-drill", True)):
        clock.at(hours=1)
        declared = await app.execute(
            incident_id,
            inc.DeclareIncident(
                incident_id, "server_crash", "Servers down", factors=SEVERE, drill=drill
            ),
            command_id=f"declare-{incident_id}",
        )
        assert declared.state.level is inc.Level.A
        page = next(iter(declared.state.pages.values()))
        clock.at(hours=1, minutes=10 if not drill else 1)
        await app.execute(
            incident_id,
            inc.AcknowledgePage(page.page_id, page.member_id),
            command_id=f"ack-{incident_id}",
        )
        clock.at(hours=2)
        resolved = await app.execute(
            incident_id, inc.ResolveIncident("back"), command_id=f"resolve-{incident_id}"
        )
        sequence = resolved.sequence
    return sequence


SURVEYS = (
    # ticket, csat, nps, comment
    ("T-A", 5, 10, "Thank you, excellent and quick support"),
    ("T-B", 2, 3, "太差了，我要投诉！"),
)


async def submit_surveys(stub: quality_pb2_grpc.QualityServiceStub, ticketing_sequence: int) -> int:
    sequence = 0
    for ticket_id, csat, nps, comment in SURVEYS:
        response = await stub.SubmitSurvey(
            qpb.SubmitSurveyRequest(
                ticket_id=ticket_id,
                csat=csat,
                nps=nps,
                comment=comment,
                ticketing_min_sequence=ticketing_sequence,
            ),
            metadata=(("idempotency-key", f"survey-{ticket_id}"),),
        )
        sequence = response.sequence
    return sequence


# Hand-computed from the scenario (docs/kpis.md), all tickets and surveys.
EXPECTED = {
    "tickets_opened": 4,
    "tickets_resolved": 3,  # A, B, D
    "backlog": 1,  # C
    "surveys": 2,
    "csat_satisfied_ratio": 0.5,  # A's 5 of {5, 2}
    "csat_mean": 3.5,
    "nps_responses": 2,
    "nps": 0.0,  # one promoter (10), one detractor (3)
    "fcr_ratio": 2 / 3,  # A and D at first contact; B had two replies
    "first_responses": 3,  # A 600 s, B 1800 s, D 300 s
    "first_response_seconds_mean": 900.0,
    "resolution_seconds_mean": (3600 + 10800 + 1200) / 3,
    "aht_seconds": (3600 + (3600 + 3600 + 1800) + 1200) / 3,  # B: minus 1 h on hold
    "first_responses_on_time": 2,  # A, D
    "sla_compliance_ratio": 2 / 3,
    "sla_breaches": 2,  # B and C first response
    "escalation_ratio": 0.25,  # C
    "reopen_ratio": 1 / 3,  # B
    "survey_response_ratio": 2 / 3,  # A and B of A, B, D
    # 100 * (.30 * .5 + .10 * .5 + .15 * 2/3 + .20 * 2/3 + .25 * 2/3)
    "quality_score": 60.0,
}
