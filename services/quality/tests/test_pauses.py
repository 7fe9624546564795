"""Pause accountability (issue 13 item 4): the "right before a breach" rule, the report's
arithmetic, the holds read model as the ticket facts projection writes it (events at fixed
instants, SQLite migrated to head), and ListHolds / GetPauseReport validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from careops.events.v1.envelope_pb2 import EventEnvelope
from careops.quality.v1 import quality_pb2 as pb
from careops.ticketing.v1 import types_pb2 as tt
from careops_eventstore.codec import DecodedEvent, to_timestamp
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.db import migrate
from careops_platform.errors import InvalidArgument
from careops_published import ticketing as tk
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quality import domain as d
from quality import readmodels
from quality.grpc_api import QualityServicer, hold_to_proto
from quality.main import QualityService, QualitySettings
from quality.metrics import KpiCollector
from quality.projections import TicketFactsProjection
from tests.support import FakeClock

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
FIRST = timedelta(minutes=30)
RESOLUTION = timedelta(hours=24)


# ----------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("consumed", "paused", "breached", "before"),
    [
        (timedelta(minutes=23), True, False, False),  # 76.7 %: not yet
        (timedelta(minutes=24), True, False, True),  # exactly the 80 % share
        (timedelta(minutes=30), True, False, True),  # at the target, not past it
        (timedelta(minutes=31), True, False, False),  # past the target: after, not before
        (timedelta(minutes=25), True, True, False),  # already breached
        (timedelta(minutes=25), False, False, False),  # not paused (stopped or not running)
    ],
)
def test_a_pause_right_before_a_breach_began_past_the_share_and_before_the_target(
    consumed: timedelta, paused: bool, breached: bool, before: bool
) -> None:
    state = d.clock_at_hold(target=FIRST, consumed=consumed, paused=paused, breached=breached)
    assert state.before_breach is before
    assert state.share == consumed / FIRST


def test_a_clock_without_target_is_never_before_a_breach() -> None:
    state = d.clock_at_hold(target=timedelta(0), consumed=timedelta(0), paused=True, breached=False)
    assert state == d.ClockAtHold(paused=True, share=None, before_breach=False)


def test_handled_tickets_are_the_opened_ones_plus_those_held_and_not_counted_there() -> None:
    handled = d.handled_tickets(
        opened={"wang": 3, "li": 1},
        held=[("wang", "T-1"), ("wang", "T-9"), ("li", "T-1")],
        # T-1 is wang's (assignee) and opened in the period; T-9 was opened before it.
        counted={("wang", "T-1")},
    )
    assert handled == {"wang": 3 + 1, "li": 1 + 1, "": 4 + 1}


def test_the_report_keeps_every_reason_in_its_totals() -> None:
    report = d.pause_report(
        rows=[d.PauseSums("wang", "waiting_customer", 2, 0, 1, 60.0, 90.0, 1)],
        totals=[d.PauseSums("", "waiting_customer", 2, 0, 1, 60.0, 90.0, 1)],
        handled={"wang": 4, "": 8},
        reasons=("waiting_customer", "waiting_internal"),
    )
    assert [(r.agent_id, r.tickets, r.handled_tickets, r.ticket_share) for r in report.rows] == [
        ("wang", 1, 4, 0.25)
    ]
    assert [(r.reason, r.holds, r.handled_tickets, r.ticket_share) for r in report.totals] == [
        ("waiting_customer", 2, 8, 0.125),
        ("waiting_internal", 0, 8, 0.0),
    ]


# ----------------------------------------------------------------------------- the read model


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    migrate(read_model_engine, MIGRATIONS)
    return read_model_engine


def clock(
    name: str,
    consumed: timedelta,
    *,
    target: timedelta,
    paused: bool = False,
    running: bool = False,
    met: bool = False,
    paused_for: timedelta | None = None,
) -> tk.SlaClockSnapshot:
    return tk.SlaClockSnapshot(
        clock=name,
        target=target,
        consumed=consumed,
        running=running,
        paused=paused,
        warn_at=None,
        due_at=None,
        warned=False,
        breached=False,
        met=met,
        stopped_at=None,
        paused_for=paused_for,
    )


class Log:
    """Feeds the ticket facts projection one event at a time, at offsets from T0."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.projection = TicketFactsProjection()
        self.sequence = 0

    def __call__(self, ticket_id: str, event: Any, *, minutes: float, actor: str = "") -> None:
        self.sequence += 1
        envelope = EventEnvelope(
            aggregate_type="ticket",
            aggregate_id=ticket_id,
            actor=actor,
            occurred_at=to_timestamp(T0 + timedelta(minutes=minutes)),
        )
        with self.engine.begin() as connection:
            self.projection.apply(connection, DecodedEvent(event, envelope), self.sequence)

    def opened(self, ticket_id: str, agent_id: str, *, minutes: float = 0) -> None:
        opened = tk.TicketOpened(ticket_id, "C-1", "chat", "fault", "normal", "regular", "")
        self(ticket_id, opened, minutes=minutes)
        self(ticket_id, tk.TicketAssigned(agent_id, False, ""), minutes=minutes)


def held_snapshot(first: timedelta, resolution: timedelta, *, answered: bool = False) -> Any:
    return tk.SlaSnapshot(
        (
            clock("first_response", first, target=FIRST, paused=not answered, met=answered),
            clock("resolution", resolution, target=RESOLUTION, paused=True),
        )
    )


def resumed_snapshot(paused_for: timedelta, *, answered: bool = False) -> Any:
    return tk.SlaSnapshot(
        (
            clock(
                "first_response",
                timedelta(0),
                target=FIRST,
                running=not answered,
                met=answered,
                paused_for=None if answered else paused_for,
            ),
            clock(
                "resolution", timedelta(0), target=RESOLUTION, running=True, paused_for=paused_for
            ),
        )
    )


def scenario(engine: Engine) -> None:
    """A: paused 25 min in (83 % of first response: right before a breach), resumed 30 min later;
    B: held for a third party (pauses nothing); C: answered, paused, resolved while held 60 min
    later; D: wang's too, never held; E: still held by li."""
    log = Log(engine)
    for ticket_id in ("T-A", "T-B", "T-C", "T-D"):
        log.opened(ticket_id, "wang")
    log.opened("T-E", "li")
    minute = timedelta(minutes=1)
    held = tk.TicketHeld("waiting_customer", True, held_snapshot(25 * minute, 25 * minute))
    log("T-A", held, minutes=25, actor="wang")
    log("T-A", tk.TicketResumed(resumed_snapshot(30 * minute)), minutes=55, actor="C-1")
    log("T-B", tk.TicketHeld("waiting_third_party", False), minutes=10, actor="wang")
    log("T-B", tk.TicketResumed(), minutes=40, actor="wang")
    sla = held_snapshot(5 * minute, 10 * minute, answered=True)
    log("T-C", tk.TicketHeld("waiting_customer", True, sla), minutes=10, actor="wang")
    sla = resumed_snapshot(60 * minute, answered=True)
    log("T-C", tk.TicketResolved(False, sla), minutes=70, actor="wang")
    sla = held_snapshot(29 * minute, 29 * minute)
    log("T-E", tk.TicketHeld("waiting_customer", True, sla), minutes=29, actor="li")


def test_each_hold_is_a_row_with_what_it_did_to_each_clock(engine: Engine) -> None:
    scenario(engine)
    with Session(engine) as session:
        a, b, c, e = (
            hold_to_proto(readmodels.list_holds(session=session, ticket_id=t, page_size=5)[0])
            for t in ("T-A", "T-B", "T-C", "T-E")
        )
    assert (a.held_by, a.reason, a.pausing, a.ended_by) == (
        "wang",
        tt.HOLD_REASON_WAITING_CUSTOMER,
        True,
        "resumed",
    )
    assert a.held_at.ToDatetime(UTC) == T0 + timedelta(minutes=25)
    assert a.ended_at.ToDatetime(UTC) == T0 + timedelta(minutes=55)
    assert (a.agent_id, a.channel, a.type, a.priority) == (
        "wang",
        tt.CHANNEL_CHAT,
        tt.TICKET_TYPE_FAULT,
        tt.PRIORITY_NORMAL,
    )
    first, resolution = a.clocks
    assert (first.clock, first.paused, first.before_breach) == (
        tt.SLA_CLOCK_FIRST_RESPONSE,
        True,
        True,
    )
    assert (first.consumed_share, first.paused_seconds) == (25 / 30, 1800.0)
    assert (resolution.before_breach, resolution.paused_seconds) == (False, 1800.0)
    # A reason that pauses nothing: no snapshot, paused 0.
    assert not b.pausing and [(k.paused, k.paused_seconds) for k in b.clocks] == [(False, 0.0)] * 2
    assert not b.clocks[0].HasField("consumed_share")
    # Resolved while held: the hold ends; the answered first-response clock was not paused.
    assert c.ended_by == "resolved"
    assert [(k.paused, k.paused_seconds) for k in c.clocks] == [(False, 0.0), (True, 3600.0)]
    # Still held: its paused time is not known yet.
    assert e.ended_by == "" and not e.HasField("ended_at")
    assert not any(k.HasField("paused_seconds") for k in e.clocks)


def test_the_report_per_agent_and_reason_and_its_totals(engine: Engine) -> None:
    scenario(engine)
    period = readmodels.Period(T0, T0 + timedelta(hours=2))
    with Session(engine) as session:
        report = readmodels.pause_report(
            session=session, where=readmodels.KpiFilter(), period=period
        )
    rows = {(r.agent_id, r.reason): r for r in report.rows}
    assert set(rows) == {
        ("li", "waiting_customer"),
        ("wang", "waiting_customer"),
        ("wang", "waiting_third_party"),
    }
    customer = rows[("wang", "waiting_customer")]
    assert (customer.holds, customer.open_holds, customer.tickets) == (2, 0, 2)
    assert (customer.handled_tickets, customer.ticket_share) == (4, 0.5)
    assert customer.first_response_paused_seconds == 1800.0
    assert customer.resolution_paused_seconds == 1800.0 + 3600.0
    assert customer.pauses_before_breach == 1
    third = rows[("wang", "waiting_third_party")]
    assert (third.holds, third.tickets, third.ticket_share) == (1, 1, 0.25)
    assert (third.first_response_paused_seconds, third.resolution_paused_seconds) == (0.0, 0.0)
    li = rows[("li", "waiting_customer")]
    assert (li.open_holds, li.handled_tickets, li.pauses_before_breach) == (1, 1, 1)
    totals = {r.reason: r for r in report.totals}
    assert list(totals) == list(readmodels.HOLD_REASONS)
    assert (totals["waiting_customer"].holds, totals["waiting_customer"].handled_tickets) == (3, 5)
    assert totals["waiting_customer"].pauses_before_breach == 2
    assert totals["waiting_internal"].holds == 0

    # The filter's agents are those who set the holds; a period before them finds none.
    with Session(engine) as session:
        only_li = readmodels.pause_report(
            session=session, where=readmodels.KpiFilter(agent_ids=("li",)), period=period
        )
        before = readmodels.pause_report(
            session=session,
            where=readmodels.KpiFilter(),
            period=readmodels.Period(T0, T0 + timedelta(minutes=10)),
        )
    assert [(r.agent_id, r.holds) for r in only_li.rows] == [("li", 1)]
    assert before.rows == ()


def test_the_metrics_have_every_reason_and_the_paused_time(engine: Engine) -> None:
    empty = {m.name: m for m in KpiCollector(engine, lambda: T0).collect()}
    assert {s.labels["reason"] for s in empty["careops_quality_holds"].samples} == set(
        readmodels.HOLD_REASONS
    )
    assert len(empty["careops_quality_sla_paused_seconds"].samples) == 2 * len(
        readmodels.HOLD_REASONS
    )
    scenario(engine)
    families = {m.name: m for m in KpiCollector(engine, lambda: T0).collect()}
    paused = {
        (s.labels["reason"], s.labels["clock"]): s.value
        for s in families["careops_quality_sla_paused_seconds"].samples
    }
    assert paused[("waiting_customer", "resolution")] == 5400.0
    assert paused[("waiting_third_party", "first_response")] == 0.0
    before = {
        s.labels["reason"]: s.value
        for s in families["careops_quality_sla_pauses_before_breach"].samples
    }
    assert before == {"waiting_customer": 2, "waiting_third_party": 0, "waiting_internal": 0}


# ----------------------------------------------------------------------------- the RPCs


async def servicer(tmp_path: Path) -> QualityServicer:
    service = QualityService(QualitySettings(data_dir=str(tmp_path)), clock=FakeClock())
    app = await service.bootstrap(InMemoryEventStore())
    migrate(service.engine, service.migrations)
    return service.servicer(app)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListHoldsRequest(), "ticket_id"),
        (pb.ListHoldsRequest(ticket_id="T-1", agent_id="wang"), "ticket_id"),
        (pb.ListHoldsRequest(ticket_id="T-1", period=pb.Period()), "period"),
        (pb.ListHoldsRequest(agent_id="x" * 101), "agent_id"),
        (pb.ListHoldsRequest(agent_id="wang", page_size=501), "page_size"),
        (pb.ListHoldsRequest(agent_id="wang", page_token="%%"), "page_token"),
    ],
)
async def test_list_holds_refuses_bad_requests_naming_the_field(
    tmp_path: Path, request_: pb.ListHoldsRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await (await servicer(tmp_path)).ListHolds(request_, None)
    assert [v.field for v in raised.value.violations] == [field]


async def test_the_holds_of_an_unknown_ticket_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(d.TicketUnknown, match="T-nope"):
        await (await servicer(tmp_path)).ListHolds(pb.ListHoldsRequest(ticket_id="T-nope"), None)


async def test_the_pause_report_refuses_an_unknown_enum_and_an_empty_period(tmp_path: Path) -> None:
    api = await servicer(tmp_path)
    with pytest.raises(InvalidArgument, match="filter.channel"):
        unknown = pb.KpiFilter(channel=99)  # type: ignore[arg-type]
        await api.GetPauseReport(pb.GetPauseReportRequest(filter=unknown), None)
    stamp = to_timestamp(T0)
    empty = pb.Period(start=stamp, end=stamp)
    with pytest.raises(InvalidArgument, match="period.start"):
        await api.GetPauseReport(pb.GetPauseReportRequest(period=empty), None)
    response = await api.GetPauseReport(pb.GetPauseReportRequest(), None)
    assert [r.reason for r in response.totals] == [
        tt.HOLD_REASON_WAITING_CUSTOMER,
        tt.HOLD_REASON_WAITING_THIRD_PARTY,
        tt.HOLD_REASON_WAITING_INTERNAL,
    ]
