"""A scripted quality scenario: tickets, replies, holds, reopenings, SLA breaches, incidents and
surveys at fixed instants, with every KPI computed by hand (docs/kpis.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from careops.quality.v1 import quality_pb2 as qpb
from careops.quality.v1 import quality_pb2_grpc
from careops_eventstore.model import EventStore
from careops_eventstore.nats_embedded import EmbeddedNats, free_port
from careops_sla import default_policy
from incident import domain as inc
from incident.application import IncidentApp
from quality.main import QualityService, QualitySettings
from ticketing import domain as tk
from ticketing.application import TicketingApp
from ticketing.main import TicketingService
from ticketing.tests.conftest import running_service

from tests.support import FakeClock, channel_to, shared_key_store

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
        # Every instance on one server shares the key store, as replicas do.
        **{**shared_key_store(nats_url, "quality"), **overrides},
    )
    service = QualityService(settings, clock=clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@asynccontextmanager
async def ticketing_and_quality(
    directory: Path, *, clock: Clock | None = None, quality_database_url: str = ""
) -> AsyncIterator[tuple[TicketingService, QualityService]]:
    """Ticketing and quality in-process on a NATS server of their own (in `directory`): KPI
    tests count every ticket on the stream, so no other test's may be there. `clock` drives
    both; without one, ticketing keeps real time and quality starts at T0. Quality's read
    models are at `quality_database_url` (empty: its SQLite file)."""
    server = EmbeddedNats(data_dir=directory / "nats", port=free_port())
    server.start()
    try:
        async with (
            running_service(directory / "ticketing", server.url, clock=clock) as ticketing,
            quality_service(
                directory / "quality",
                server.url,
                clock or Clock(),
                database_url=quality_database_url,
            ) as quality,
        ):
            yield ticketing, quality
    finally:
        server.stop()


@asynccontextmanager
async def stub_of(service: QualityService) -> AsyncIterator[quality_pb2_grpc.QualityServiceStub]:
    assert service.server is not None
    async with channel_to(service) as channel:
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


async def write_tickets(store: EventStore, clock: Clock) -> int:
    """Seven tickets (A to G) whose KPIs docs/kpis.md computes by hand in the test."""
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
        # An internal note is no response: the first response stays the reply at 10 min.
        (5, "T-A", tk.AddReply(tk.Author.AGENT, "agent-li", "check the manual", internal=True)),
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
        # E: chat consultation at 2.5 h, answered in 5 min, resolved at first contact after
        # 10 min, reopened at 200 min, resolved again at 210 min: not solved at first contact.
        (
            150,
            "T-E",
            tk.OpenTicket(
                "T-E", "C-5", tk.Channel.CHAT, tk.TicketType.CONSULTATION, tk.Priority.NORMAL, "E"
            ),
        ),
        (151, "T-E", tk.AssignTicket("agent-zhao")),
        (155, "T-E", tk.AddReply(tk.Author.AGENT, "agent-zhao", "try this")),
        (160, "T-E", tk.ResolveTicket("worked")),
        (200, "T-E", tk.ReopenTicket("stopped working")),
        (210, "T-E", tk.ResolveTicket("fixed for good")),
        # F: chat consultation at 3 h, resolved after 10 min without a reply (the customer found
        # the answer), then an agent writes at 200 min: no first response.
        (
            180,
            "T-F",
            tk.OpenTicket(
                "T-F", "C-6", tk.Channel.CHAT, tk.TicketType.CONSULTATION, tk.Priority.NORMAL, "F"
            ),
        ),
        (181, "T-F", tk.AssignTicket("agent-zhao")),
        (190, "T-F", tk.ResolveTicket("customer solved it")),
        (205, "T-F", tk.AddReply(tk.Author.AGENT, "agent-zhao", "glad it works")),
        # G: chat consultation at 200 min, on hold for the customer after 5 min, answered while
        # on hold at 215 min (the first response, 5 min of clock), resumed by the customer's
        # reply at 300 min, still open: the first response stays on time after the resume.
        (
            200,
            "T-G",
            tk.OpenTicket(
                "T-G", "C-7", tk.Channel.CHAT, tk.TicketType.CONSULTATION, tk.Priority.NORMAL, "G"
            ),
        ),
        (201, "T-G", tk.AssignTicket("agent-zhao")),
        (205, "T-G", tk.HoldTicket(tk.HoldReason.WAITING_CUSTOMER)),
        (215, "T-G", tk.AddReply(tk.Author.AGENT, "agent-zhao", "any news?")),
        (300, "T-G", tk.AddReply(tk.Author.CUSTOMER, "C-7", "here are the details")),
    ]
    sequence = 0
    for index, (minutes, ticket_id, command) in enumerate(sorted(steps, key=lambda step: step[0])):
        clock.at(minutes=minutes)
        result = await app.execute(ticket_id, command, command_id=f"scenario-{index}")
        assert result.events, (ticket_id, command)
        sequence = max(sequence, result.sequence)
    return sequence


async def write_incidents(store: EventStore, clock: Clock) -> int:
    """Level-A incidents declared at 1 h: one acknowledged after 10 min and resolved after 1 h;
    one resolved after 30 min and acknowledged only 10 min later (not in MTTA); a drill; and one
    declared at 3 h, never acknowledged nor resolved (no resolve time)."""
    app = IncidentApp(store=store, clock=clock)
    await app.provision()
    await app.load_defaults(oncall_file=None, matrix_file=None)
    sequence = 0
    # id, declared, acknowledged, resolved (minutes after T0; None: never)
    script: tuple[tuple[str, float, float | None, float | None, bool], ...] = (
        ("I-real", 60, 70, 120, False),
        ("I-drill", 60, 61, 120, True),
        ("I-late-ack", 60, 100, 90, False),
        ("I-open", 180, None, None, False),
    )
    for incident_id, declared_at, ack_at, resolved_at, drill in script:
        clock.at(minutes=declared_at)
        declared = await app.execute(
            incident_id,
            inc.DeclareIncident(
                incident_id, "server_crash", "Servers down", factors=SEVERE, drill=drill
            ),
            command_id=f"declare-{incident_id}",
        )
        assert declared.state.level is inc.Level.A
        sequence = max(sequence, declared.sequence)
        page = next(iter(declared.state.pages.values()))
        later: list[tuple[float, inc.Command, str]] = []
        if ack_at is not None:
            later.append((ack_at, inc.AcknowledgePage(page.page_id, page.member_id), "ack"))
        if resolved_at is not None:
            later.append((resolved_at, inc.ResolveIncident("back"), "resolve"))
        for minutes, command, name in sorted(later, key=lambda item: item[0]):
            clock.at(minutes=minutes)
            result = await app.execute(incident_id, command, command_id=f"{name}-{incident_id}")
            sequence = max(sequence, result.sequence)
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
    "tickets_opened": 7,
    "tickets_resolved": 5,  # A, B, D, E, F
    "backlog": 2,  # C, G
    "surveys": 2,
    "csat_satisfied_ratio": 0.5,  # A's 5 of {5, 2}
    "csat_mean": 3.5,
    "nps_responses": 2,
    "nps": 0.0,  # one promoter (10), one detractor (3)
    # A, D and F at first contact; B had two replies, E was reopened.
    "fcr_ratio": 3 / 5,
    # A 600 s, B 1800 s, D 300 s, E 300 s, G 900 s; F's reply came after its resolution.
    "first_responses": 5,
    "first_response_seconds_mean": (600 + 1800 + 300 + 300 + 900) / 5,
    "resolution_seconds_mean": (3600 + 10800 + 1200 + 600 + 600) / 5,  # first resolutions
    # Resolved tickets only. B: minus 1 h on hold; E: 10 min + 10 min after the reopening.
    "aht_seconds": (3600 + (3600 + 3600 + 1800) + 1200 + 1200 + 600) / 5,
    "first_responses_on_time": 4,  # A, D, E, G
    "first_responses_due": 6,  # the 5 first responses and C, breached and never answered
    "sla_compliance_ratio": 4 / 6,
    "sla_breaches": 2,  # B and C first response
    "escalation_ratio": 1 / 7,  # C
    "reopen_ratio": 2 / 5,  # B, E
    "survey_response_ratio": 2 / 5,  # A and B of A, B, D, E, F
    # 100 * (.30 * .5 + .10 * .5 + .15 * (1 - 2/5) + .20 * 3/5 + .25 * 4/6), to 4 places
    "quality_score": round(100 * (0.15 + 0.05 + 0.15 * 0.6 + 0.20 * 0.6 + 0.25 * 4 / 6), 4),
}
# Level A, drills left out: I-real acknowledged after 600 s; I-late-ack's acknowledgement came
# after its resolution; I-real resolved after 3600 s, I-late-ack after 1800 s, I-open never.
EXPECTED_CRISIS_A = {
    "incidents": 3,
    "acknowledged": 1,
    "acknowledge_seconds_mean": 600.0,
    "resolved": 2,
    "resolve_seconds_mean": 2700.0,
}
