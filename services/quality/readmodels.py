"""Quality read models: the tables (ticket facts, SLA timelines, surveys, incidents, KPI sums)
and the queries over them. Projections write them; metrics reads them at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from careops.ticketing.v1 import types_pb2 as ticket_types
from careops_eventstore.sqlstate import aware
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from quality import domain as d

metadata = MetaData()

tickets = Table(
    "quality_tickets",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("tier", String(20), nullable=False),
    Column("agent_id", String(100), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("first_response_at", DateTime(timezone=True)),
    Column("first_response_seconds", Float),
    Column("first_response_on_time", Boolean),
    Column("first_resolved_at", DateTime(timezone=True)),
    Column("resolution_seconds", Float),
    Column("first_contact", Boolean),
    Column("resolved", Boolean, nullable=False),
    Column("closed", Boolean, nullable=False),
    Column("reopen_count", Integer, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("first_response_breached", Boolean, nullable=False),
    Column("breaches", Integer, nullable=False),
    Column("handle_seconds", Float, nullable=False),
    Column("active_since", DateTime(timezone=True)),
    Column("version", BigInteger, nullable=False),
    # The SLA policy version the ticket was opened under (what-if replays it as decided).
    Column("sla_policy_version", String(64), nullable=False, server_default=""),
    Index("ix_quality_tickets_opened", "opened_at"),
    Index("ix_quality_tickets_agent", "agent_id", "opened_at"),
)

# Granted compensation (issue 12 item 3), one row per grant (direct or approved), with the
# ticket's dimensions at grant time. Amounts in hundredths: ticketing allows 2 decimals.
compensations = Table(
    "quality_compensations",
    metadata,
    Column("compensation_id", String(100), primary_key=True),
    Column("ticket_id", String(64), nullable=False),
    Column("agent_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Index("ix_quality_compensations_granted", "granted_at"),
)

# Complaint KPIs (issue 12 item 2), one row per complaint ticket. A re-complaint: the complaint
# was reopened, or the same customer had opened another complaint within RECOMPLAINT_DAYS before.
RECOMPLAINT_DAYS = 30
complaints = Table(
    "quality_complaints",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("agent_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledge_seconds", Float),
    Column("follow_up_due_at", DateTime(timezone=True)),
    # None while no follow-up is due or it is still pending; False once late or missed.
    Column("follow_up_on_time", Boolean),
    Column("recomplaint", Boolean, nullable=False),
    Index("ix_quality_complaints_opened", "opened_at"),
    Index("ix_quality_complaints_customer", "customer_id", "opened_at"),
)

# The emotion of every customer message (issue 12 item 4: ticketing records it on TicketOpened and
# a customer's ReplyAdded), with the ticket's dimensions at that time.
customer_emotions = Table(
    "quality_customer_emotions",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("agent_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("emotion", String(20), nullable=False),
    Index("ix_quality_customer_emotions_at", "at"),
    # The scrape's all-time counts per channel and emotion, from the index alone.
    Index("ix_quality_customer_emotions_channel", "channel", "emotion"),
)

# Pause accountability (issue 13 item 4): one row per hold, keyed by the stream sequence of its
# TicketHeld; who set it (the event's actor), the reason, the ticket's dimensions at the hold
# (agent_id: its assignee then), and per SLA clock whether the hold paused it, the share of its
# target used when the hold began, whether that was right before a breach (domain.before_breach)
# and the business seconds it stayed paused (set when the hold ends; None while held, and for
# holds ended before issue 13, whose events do not say). No customer data: agents' ids only.
holds = Table(
    "quality_holds",
    metadata,
    Column("sequence", BigInteger, primary_key=True),
    Column("ticket_id", String(64), nullable=False),
    Column("held_by", String(100), nullable=False),
    Column("reason", String(30), nullable=False),
    Column("pausing", Boolean, nullable=False),
    Column("held_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    # "resumed", "resolved" or "closed"; "" while held.
    Column("ended_by", String(20), nullable=False),
    Column("agent_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("first_response_paused", Boolean, nullable=False),
    Column("first_response_share", Float),
    Column("first_response_before_breach", Boolean, nullable=False),
    Column("first_response_paused_seconds", Float),
    Column("resolution_paused", Boolean, nullable=False),
    Column("resolution_share", Float),
    Column("resolution_before_breach", Boolean, nullable=False),
    Column("resolution_paused_seconds", Float),
    Index("ix_quality_holds_ticket", "ticket_id", "sequence"),
    Index("ix_quality_holds_held_by", "held_by", "held_at"),
    Index("ix_quality_holds_held_at", "held_at"),
)

timeline = Table(
    "quality_sla_timeline",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("step", String(20), nullable=False),
    # A priority, a hold reason or (POLICY) an SLA policy version label.
    Column("value", String(64), nullable=False),
)

surveys = Table(
    "quality_surveys",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("agent_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("csat", Integer, nullable=False),
    Column("nps", Integer),
    Column("comment", Text, nullable=False),
    Column("emotion", String(20), nullable=False),
    Column("emotion_score", Float, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("ticket_opened_at", DateTime(timezone=True)),
    Column("follow_up_required", Boolean, nullable=False),
    Column("follow_up_due_at", DateTime(timezone=True)),
    Column("follow_up_status", String(20), nullable=False),
    Column("done_at", DateTime(timezone=True)),
    Column("note", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_quality_surveys_submitted", "submitted_at"),
    Index("ix_quality_surveys_ticket_opened", "ticket_opened_at"),
    Index("ix_quality_surveys_follow_up", "follow_up_status", "follow_up_due_at"),
    # The scrape's survey counts (survey_scan) from the index alone, already grouped.
    Index(
        "ix_quality_surveys_scores", "channel", "csat", "nps", "submitted_at", "ticket_opened_at"
    ),
)

# The scored and yes/no answers of template surveys (open-text answers stay in the survey's
# comment only: personal data in one place). Filters and periods join quality_surveys.
survey_answers = Table(
    "quality_survey_answers",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("question_id", String(40), primary_key=True),
    Column("template_id", String(64), nullable=False),
    Column("template_version", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("score", Integer),
    Column("yes", Boolean),
    Index("ix_quality_survey_answers_question", "template_id", "question_id"),
    Index("ix_quality_survey_answers_kind", "kind", "template_id", "question_id"),
)

incidents = Table(
    "quality_incidents",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("level", String(1), nullable=False),
    Column("drill", Boolean, nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledge_seconds", Float),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolve_seconds", Float),
)

FIRST_RESPONSE_BUCKETS = (10.0, 20.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0)
# Minutes for tickets solved at first contact, then an edge at every default resolution target
# (urgent 4h, high 8h, normal 24h, low 72h, x0.5 / x0.75 by tier), so a quantile reads close
# to its value and "within target" is one bucket (migration 0002 recomputes them).
RESOLUTION_BUCKETS = tuple(
    float(seconds)
    for seconds in (60, 300, 900, 1800)
    + tuple(hours * 3600 for hours in (1, 2, 3, 4, 6, 8, 12, 18, 24, 36, 54, 72, 168))
)
# What one ticket adds to the KPI sums (the aggregates of ticket_counts, surveys aside).
CONTRIBUTIONS = (
    "opened",
    "resolved_once",
    "backlog",
    "first_contact",
    "first_responses",
    "first_response_total",
    "resolution_total",
    "handle_total",
    "resolved_now",
    "on_time",
    "breaches",
    "escalated",
    "reopened",
    "unanswered_breaches",
)
FIRST_RESPONSE_LE = tuple(f"first_response_le_{i}" for i in range(len(FIRST_RESPONSE_BUCKETS)))
RESOLUTION_LE = tuple(f"resolution_le_{i}" for i in range(len(RESOLUTION_BUCKETS)))


def _sums(*names: str) -> list[Column[Any]]:
    return [Column(name, Float, nullable=False) for name in names]


# The sums of CONTRIBUTIONS per opening hour (UTC), channel and current priority, maintained by
# the ticket projection, so the live gauges read a few rows instead of every ticket.
ticket_buckets = Table(
    "quality_ticket_buckets",
    metadata,
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("priority", String(20), primary_key=True),
    *_sums(*CONTRIBUTIONS),
)
# All-time sums per channel and priority, with cumulative histogram bucket counts.
ticket_totals = Table(
    "quality_ticket_totals",
    metadata,
    Column("channel", String(20), primary_key=True),
    Column("priority", String(20), primary_key=True),
    *_sums(*CONTRIBUTIONS, *FIRST_RESPONSE_LE, *RESOLUTION_LE),
)

FOLLOW_UP_NONE = "none"
FOLLOW_UP_PENDING = "pending"
FOLLOW_UP_OVERDUE = "overdue"
FOLLOW_UP_DONE = "done"


@dataclass(frozen=True)
class KpiFilter:
    """Dimensions narrowing a KPI query; empty strings match everything."""

    agent_ids: tuple[str, ...] = ()
    channel: str = ""
    type: str = ""
    priority: str = ""


@dataclass(frozen=True)
class Period:
    """[start, end); None: unbounded."""

    start: datetime | None = None
    end: datetime | None = None


def _where(table: Table, where: KpiFilter, at: Any, period: Period) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if where.agent_ids:
        clauses.append(table.c.agent_id.in_(where.agent_ids))
    for name in ("channel", "type", "priority"):
        value = getattr(where, name)
        if value:
            clauses.append(table.c[name] == value)
    if period.start is not None:
        clauses.append(at >= period.start)
    if period.end is not None:
        clauses.append(at < period.end)
    return clauses


def _ratio(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def ticket_counts(*, session: Session, where: KpiFilter, period: Period) -> dict[str, Any]:
    """Returns the ticket aggregates of docs/kpis.md (sums and counts) over the cohort."""
    t = tickets
    resolved_once = t.c.first_resolved_at.is_not(None)
    unanswered_breach = t.c.first_response_breached & t.c.first_response_at.is_(None)
    query = select(
        func.count().label("opened"),
        _count_if(resolved_once).label("resolved_once"),
        _count_if(~t.c.resolved).label("backlog"),
        _count_if(resolved_once & t.c.first_contact & (t.c.reopen_count == 0)).label(
            "first_contact"
        ),
        func.count(t.c.first_response_at).label("first_responses"),
        func.coalesce(func.sum(t.c.first_response_seconds), 0.0).label("first_response_total"),
        func.coalesce(func.sum(t.c.resolution_seconds), 0.0).label("resolution_total"),
        func.coalesce(func.sum(case((t.c.resolved, t.c.handle_seconds), else_=0.0)), 0.0).label(
            "handle_total"
        ),
        _count_if(t.c.resolved).label("resolved_now"),
        _count_if(t.c.first_response_on_time).label("on_time"),
        func.coalesce(func.sum(t.c.breaches), 0).label("breaches"),
        _count_if(t.c.escalated).label("escalated"),
        _count_if(resolved_once & (t.c.reopen_count > 0)).label("reopened"),
        _count_if(unanswered_breach).label("unanswered_breaches"),
        _count_if(resolved_once & surveys.c.ticket_id.is_not(None)).label("surveyed"),
    )
    # One survey per ticket (primary key), so the outer join keeps one row per ticket.
    query = query.select_from(t.outerjoin(surveys, surveys.c.ticket_id == t.c.ticket_id)).where(
        *_where(t, where, t.c.opened_at, period)
    )
    return dict(session.execute(query).one()._mapping)


def survey_counts(
    *, session: Session, where: KpiFilter, period: Period, group: str = ""
) -> dict[str, dict[str, Any]]:
    """Returns the survey aggregates per group value ("" without grouping)."""
    s = surveys
    key = s.c[group] if group else literal("")
    query = select(
        key.label("key"),
        func.count().label("surveys"),
        _count_if(s.c.csat >= 4).label("satisfied"),
        func.coalesce(func.sum(s.c.csat), 0).label("csat_total"),
        func.count(s.c.nps).label("nps_responses"),
        _count_if(s.c.nps >= 9).label("promoters"),
        _count_if(s.c.nps <= 6).label("detractors"),
        *(_count_if(s.c.csat == score).label(f"csat_{score}") for score in d.CSAT_SCORES),
        *(_count_if(s.c.nps == score).label(f"nps_{score}") for score in d.NPS_SCORES),
    ).where(*_where(s, where, s.c.submitted_at, period))
    if group:
        query = query.group_by(key)
    return {str(row.key): dict(row._mapping) for row in session.execute(query)}


def yes_no_counts(
    *, session: Session, where: KpiFilter, period: Period
) -> tuple[d.YesNoCount, ...]:
    """Returns yes and no per template yes/no question over the surveys of filter and period."""
    a, s = survey_answers, surveys
    query = (
        select(
            a.c.template_id,
            a.c.question_id,
            _count_if(a.c.yes.is_(True)).label("yes"),
            _count_if(a.c.yes.is_(False)).label("no"),
        )
        .select_from(a.join(s, s.c.ticket_id == a.c.ticket_id))
        .where(a.c.kind == d.QuestionKind.YES_NO.value, *_where(s, where, s.c.submitted_at, period))
        .group_by(a.c.template_id, a.c.question_id)
        .order_by(a.c.template_id, a.c.question_id)
    )
    return tuple(
        d.YesNoCount(row.template_id, row.question_id, int(row.yes), int(row.no))
        for row in session.execute(query)
    )


def distribution(
    row: dict[str, Any], metric: str, scores: Iterable[int]
) -> tuple[d.ScoreCount, ...]:
    """Returns the full-scale distribution of `metric` ("csat", "nps") in a survey aggregate."""
    return tuple(d.ScoreCount(score, int(row.get(f"{metric}_{score}") or 0)) for score in scores)


def crisis(*, session: Session, period: Period) -> tuple[d.CrisisKpis, ...]:
    """Returns crisis response KPIs per level for non-drill incidents declared in the period."""
    i = incidents
    clauses: list[ColumnElement[bool]] = [~i.c.drill]
    if period.start is not None:
        clauses.append(i.c.declared_at >= period.start)
    if period.end is not None:
        clauses.append(i.c.declared_at < period.end)
    query = (
        select(
            i.c.level,
            func.count(),
            func.count(i.c.acknowledge_seconds),
            func.avg(i.c.acknowledge_seconds),
            func.count(i.c.resolve_seconds),
            func.avg(i.c.resolve_seconds),
        )
        .where(*clauses)
        .group_by(i.c.level)
    )
    rows = {row[0]: row for row in session.execute(query)}
    result = []
    for level in d.INCIDENT_LEVELS:
        row = rows.get(level)
        if row is None:
            result.append(d.CrisisKpis(level))
            continue
        result.append(
            d.CrisisKpis(
                level,
                int(row[1]),
                int(row[2]),
                float(row[3] or 0.0),
                int(row[4]),
                float(row[5] or 0.0),
            )
        )
    return tuple(result)


def combine(
    ticket_row: dict[str, Any] | None,
    survey_row: dict[str, Any] | None,
    crisis_kpis: tuple[d.CrisisKpis, ...] = (),
) -> d.Kpis:
    """Returns the KPIs of one group from its ticket and survey aggregates."""
    t = ticket_row or {}
    s = survey_row or {}
    opened = int(t.get("opened") or 0)
    resolved_once = int(t.get("resolved_once") or 0)
    first_responses = int(t.get("first_responses") or 0)
    on_time = int(t.get("on_time") or 0)
    unanswered_breaches = int(t.get("unanswered_breaches") or 0)
    nps_responses = int(s.get("nps_responses") or 0)
    kpis = d.Kpis(
        tickets_opened=opened,
        tickets_resolved=resolved_once,
        backlog=int(t.get("backlog") or 0),
        surveys=int(s.get("surveys") or 0),
        csat_satisfied_ratio=_ratio(s.get("satisfied") or 0, s.get("surveys") or 0),
        csat_mean=_ratio(s.get("csat_total") or 0, s.get("surveys") or 0),
        nps_responses=nps_responses,
        nps=100.0 * _ratio((s.get("promoters") or 0) - (s.get("detractors") or 0), nps_responses),
        fcr_ratio=_ratio(t.get("first_contact") or 0, resolved_once),
        first_responses=first_responses,
        first_response_seconds_mean=_ratio(t.get("first_response_total") or 0.0, first_responses),
        resolution_seconds_mean=_ratio(t.get("resolution_total") or 0.0, resolved_once),
        aht_seconds=_ratio(t.get("handle_total") or 0.0, t.get("resolved_now") or 0),
        first_responses_on_time=on_time,
        first_responses_due=first_responses + unanswered_breaches,
        sla_compliance_ratio=d.sla_compliance(
            on_time=on_time,
            first_responses=first_responses,
            unanswered_breaches=unanswered_breaches,
        ),
        sla_breaches=int(t.get("breaches") or 0),
        escalation_ratio=_ratio(t.get("escalated") or 0, opened),
        reopen_ratio=_ratio(t.get("reopened") or 0, resolved_once),
        survey_response_ratio=_ratio(t.get("surveyed") or 0, resolved_once),
        crisis=crisis_kpis,
        csat_distribution=distribution(s, "csat", d.CSAT_SCORES),
        nps_distribution=distribution(s, "nps", d.NPS_SCORES),
    )
    score = d.quality_score(d.score_components(kpis))
    return d.Kpis(**{**kpis.__dict__, "quality_score": score})


def merge(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Returns the aggregates of several groups together (every aggregate is a sum or count)."""
    total: dict[str, Any] = {}
    for row in rows:
        for name, value in row.items():
            if name != "key":
                total[name] = total.get(name, 0) + (value or 0)
    return total


def kpis(*, session: Session, where: KpiFilter, period: Period) -> d.Kpis:
    """Returns every KPI of docs/kpis.md for the filter and period."""
    ticket_row = ticket_counts(session=session, where=where, period=period)
    survey_row = survey_counts(session=session, where=where, period=period).get("")
    result = combine(ticket_row, survey_row, crisis(session=session, period=period))
    yes_no = yes_no_counts(session=session, where=where, period=period)
    return replace(result, yes_no=yes_no)


def ticket_facts(*, session: Session, ticket_id: str) -> d.TicketFacts | None:
    """Returns what quality knows of a ticket (None if it never saw it)."""
    row = session.execute(select(tickets).where(tickets.c.ticket_id == ticket_id)).first()
    if row is None:
        return None
    return d.TicketFacts(
        ticket_id=row.ticket_id,
        customer_id=row.customer_id,
        agent_id=row.agent_id,
        channel=row.channel,
        ticket_type=row.type,
        priority=row.priority,
        resolved=row.first_resolved_at is not None,
        opened_at=aware(row.opened_at),
    )


def survey(*, session: Session, ticket_id: str) -> Any:
    """Returns the survey row of a ticket, or None."""
    return session.execute(select(surveys).where(surveys.c.ticket_id == ticket_id)).first()


def follow_ups(*, session: Session, status: str, limit: int) -> list[Any]:
    """Returns surveys needing a follow-up (with `status` unless empty), earliest due first."""
    query = select(surveys).where(surveys.c.follow_up_required)
    if status:
        query = query.where(surveys.c.follow_up_status == status)
    return list(session.execute(query.order_by(surveys.c.follow_up_due_at).limit(limit)))


def overdue_follow_ups(*, session: Session) -> int:
    """Returns how many follow-ups are overdue and not done."""
    query = select(func.count()).where(surveys.c.follow_up_status == FOLLOW_UP_OVERDUE)
    return int(session.execute(query).scalar() or 0)


def sla_timelines(
    *, session: Session, where: KpiFilter, period: Period, limit: int
) -> list[tuple[Any, list[d.TimelineStep]]] | None:
    """Returns (ticket row, SLA timeline) of the tickets opened in the period; None when there
    are more than `limit` of them (every timeline is held in memory for the replay)."""
    rows = list(
        session.execute(
            select(tickets)
            .where(*_where(tickets, where, tickets.c.opened_at, period))
            .order_by(tickets.c.ticket_id)
            .limit(limit + 1)
        )
    )
    if len(rows) > limit:
        return None
    steps: dict[str, list[d.TimelineStep]] = {row.ticket_id: [] for row in rows}
    ids = list(steps)
    for chunk in range(0, len(ids), 500):
        query = (
            select(timeline)
            .where(timeline.c.ticket_id.in_(ids[chunk : chunk + 500]))
            .order_by(timeline.c.ticket_id, timeline.c.sequence, timeline.c.position)
        )
        for item in session.execute(query):
            at = aware(item.at)
            assert at is not None
            steps[item.ticket_id].append(d.TimelineStep(at, d.Step(item.step), item.value))
    return [(row, steps[row.ticket_id]) for row in rows]


def hour_of(at: datetime) -> datetime:
    """Returns the start of the UTC hour of an instant."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bucket_counts(
    *, session: Session, since: datetime, surveyed: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Returns per channel the ticket sums of tickets opened since `since` (an hour start),
    with `surveyed`: the surveys of those tickets (SurveyScan.surveyed)."""
    b = ticket_buckets
    query = (
        select(
            b.c.channel.label("key"), *(func.sum(b.c[name]).label(name) for name in CONTRIBUTIONS)
        )
        .where(b.c.hour >= since)
        .group_by(b.c.channel)
    )
    rows = {row.key: dict(row._mapping) for row in session.execute(query) if row.opened}
    for channel, count in surveyed.items():
        if channel in rows:
            rows[channel]["surveyed"] = count
    return rows


def totals(*, session: Session) -> list[Any]:
    """Returns the all-time sums per channel and priority (tickets ever opened)."""
    query = select(ticket_totals).where(ticket_totals.c.opened > 0)
    return list(session.execute(query.order_by(ticket_totals.c.channel, ticket_totals.c.priority)))


def unacknowledged_age(*, session: Session, now: datetime) -> dict[str, float]:
    """Returns per level the age in seconds of the oldest unacknowledged open non-drill incident."""
    i = incidents
    query = (
        select(i.c.level, func.min(i.c.declared_at))
        .where(~i.c.drill, i.c.acknowledged_at.is_(None), i.c.resolved_at.is_(None))
        .group_by(i.c.level)
    )
    ages = {}
    for level, oldest in session.execute(query):
        declared = aware(oldest)
        assert declared is not None
        ages[level] = max((now - declared).total_seconds(), 0.0)
    return ages


def window_kpis(*, session: Session, since: datetime, scan: SurveyScan) -> dict[str, d.Kpis]:
    """Returns the KPIs of tickets opened and surveys submitted since `since` (an hour start,
    one of the scan's starts), per channel and under "all", from the hourly sums and the survey
    scan: equal to GetKpis with period.start = since, at the cost of a few rows per hour."""
    ticket_rows = bucket_counts(session=session, since=since, surveyed=scan.surveyed(since))
    survey_rows = scan.submitted(since)
    result = {
        key: combine(ticket_rows.get(key), survey_rows.get(key))
        for key in sorted(set(ticket_rows) | set(survey_rows))
    }
    result["all"] = combine(merge(ticket_rows.values()), merge(survey_rows.values()))
    return result


def survey_row(key: str, counts: Iterable[tuple[int, int | None, int]]) -> dict[str, Any]:
    """Returns survey_counts' aggregates of one group from its surveys per (csat, nps, count)."""
    row: dict[str, Any] = {
        "key": key,
        "surveys": 0,
        "satisfied": 0,
        "csat_total": 0,
        "nps_responses": 0,
        "promoters": 0,
        "detractors": 0,
        **{f"csat_{score}": 0 for score in d.CSAT_SCORES},
        **{f"nps_{score}": 0 for score in d.NPS_SCORES},
    }
    for csat, nps, n in counts:
        row["surveys"] += n
        row["csat_total"] += csat * n
        if csat >= 4:
            row["satisfied"] += n
        if csat in d.CSAT_SCORES:
            row[f"csat_{csat}"] += n
        if nps is None:
            continue
        row["nps_responses"] += n
        if nps >= 9:
            row["promoters"] += n
        if nps <= 6:
            row["detractors"] += n
        if nps in d.NPS_SCORES:
            row[f"nps_{nps}"] += n
    return row


@dataclass(frozen=True)
class SurveyGroup:
    """The surveys of one channel, csat and nps: in all, submitted since each start of the
    scan, and of tickets opened since each start."""

    channel: str
    csat: int
    nps: int | None
    surveys: int
    submitted: tuple[int, ...]
    opened: tuple[int, ...]


@dataclass(frozen=True)
class SurveyScan:
    """Every survey counted in one grouped query (a scrape's survey figures), per channel, csat
    and nps, since each of `starts`."""

    starts: tuple[datetime, ...]
    groups: tuple[SurveyGroup, ...]

    def submitted(self, since: datetime | None) -> dict[str, dict[str, Any]]:
        """survey_counts grouped by channel over the surveys submitted since `since` (one of
        the starts; None: all time), channels with surveys only."""
        at = None if since is None else self.starts.index(since)
        found: dict[str, list[tuple[int, int | None, int]]] = {}
        for g in self.groups:
            n = g.surveys if at is None else g.submitted[at]
            if n:
                found.setdefault(g.channel, []).append((g.csat, g.nps, n))
        return {channel: survey_row(channel, found[channel]) for channel in sorted(found)}

    def surveyed(self, since: datetime) -> dict[str, int]:
        """Surveys per channel of the tickets opened since `since` (channels with some only)."""
        at = self.starts.index(since)
        counts: dict[str, int] = {}
        for g in self.groups:
            if g.opened[at]:
                counts[g.channel] = counts.get(g.channel, 0) + g.opened[at]
        return counts

    def overall(self) -> dict[str, Any]:
        """survey_counts without grouping over every survey."""
        return survey_row("", ((g.csat, g.nps, g.surveys) for g in self.groups))


def survey_scan(*, session: Session, starts: Sequence[datetime]) -> SurveyScan:
    """Counts the surveys per channel, csat and nps, submitted since each of `starts` and of
    tickets opened since each (SurveyScan), in one query instead of one per window and figure."""
    s = surveys
    ordered = tuple(starts)
    query = select(
        s.c.channel,
        s.c.csat,
        s.c.nps,
        func.count(),
        *(func.count(case((s.c.submitted_at >= start, 1))) for start in ordered),
        *(func.count(case((s.c.ticket_opened_at >= start, 1))) for start in ordered),
    ).group_by(s.c.channel, s.c.csat, s.c.nps)
    size = len(ordered)
    groups = tuple(
        SurveyGroup(
            channel=str(row[0]),
            csat=int(row[1]),
            nps=None if row[2] is None else int(row[2]),
            surveys=int(row[3]),
            submitted=tuple(int(n) for n in row[4 : 4 + size]),
            opened=tuple(int(n) for n in row[4 + size :]),
        )
        for row in session.execute(query)
    )
    return SurveyScan(ordered, groups)


# ----------------------------------------------------------------------------- compensation


@dataclass(frozen=True)
class CompensationTotal:
    """Granted compensation in one currency for one key (a kind, an agent, a ticket type; "" for
    the total): the sum in hundredths, the number of grants and of tickets compensated."""

    key: str
    currency: str
    amount_cents: int
    count: int
    tickets: int


@dataclass(frozen=True)
class CompensationKpis:
    """Compensation per ticket, per kind, per agent and per ticket type, by currency."""

    totals: tuple[CompensationTotal, ...] = ()
    by_kind: tuple[CompensationTotal, ...] = ()
    by_agent: tuple[CompensationTotal, ...] = ()
    by_ticket_type: tuple[CompensationTotal, ...] = ()


def _compensation_totals(
    session: Session, clauses: list[ColumnElement[bool]], key: Any
) -> tuple[CompensationTotal, ...]:
    c = compensations
    query = (
        select(
            key.label("key"),
            c.c.currency,
            func.sum(c.c.amount_cents),
            func.count(),
            func.count(c.c.ticket_id.distinct()),
        )
        .where(*clauses)
        .group_by(key, c.c.currency)
        .order_by(key, c.c.currency)
    )
    return tuple(
        CompensationTotal(str(k), currency, int(amount), int(count), int(tickets_))
        for k, currency, amount, count, tickets_ in session.execute(query)
    )


def compensation_kpis(*, session: Session, where: KpiFilter, period: Period) -> CompensationKpis:
    """Returns the granted compensation for the filter, granted within the period."""
    c = compensations
    clauses = _where(c, where, c.c.granted_at, period)
    return CompensationKpis(
        totals=_compensation_totals(session, clauses, literal("")),
        by_kind=_compensation_totals(session, clauses, c.c.kind),
        by_agent=_compensation_totals(session, clauses, c.c.agent_id),
        by_ticket_type=_compensation_totals(session, clauses, c.c.type),
    )


def compensation_by_kind(*, session: Session) -> tuple[CompensationTotal, ...]:
    """Returns compensation_kpis' by_kind of all time (metrics), without the other groupings."""
    return _compensation_totals(session, [], compensations.c.kind)


# ----------------------------------------------------------------------------- emotion


@dataclass(frozen=True)
class EmotionCount:
    """Customer messages of one emotion on one channel."""

    channel: str
    emotion: str
    count: int


def emotion_counts(*, session: Session, where: KpiFilter, period: Period) -> list[EmotionCount]:
    """Returns the customer messages per channel and emotion for the filter, within the period."""
    e = customer_emotions
    query = (
        select(e.c.channel, e.c.emotion, func.count())
        .where(*_where(e, where, e.c.at, period))
        .group_by(e.c.channel, e.c.emotion)
        .order_by(e.c.channel, e.c.emotion)
    )
    return [
        EmotionCount(channel, emotion, int(n)) for channel, emotion, n in session.execute(query)
    ]


# ----------------------------------------------------------------------------- complaints


@dataclass(frozen=True)
class ComplaintKpis:
    """The complaint KPIs of the complaints opened in a period (docs/kpis.md)."""

    complaints: int = 0
    acknowledged: int = 0
    mean_acknowledge_seconds: float = 0.0
    follow_ups_due: int = 0
    follow_ups_on_time: int = 0
    follow_up_on_time_ratio: float = 0.0
    recomplaints: int = 0
    recomplaint_ratio: float = 0.0


def complaint_kpis(*, session: Session, where: KpiFilter, period: Period) -> ComplaintKpis:
    """Returns time to first acknowledgement, follow-up on time and re-complaint rate."""
    c = complaints
    due = c.c.follow_up_on_time.is_not(None)
    row = session.execute(
        select(
            func.count(),
            func.count(c.c.acknowledged_at),
            func.coalesce(func.avg(c.c.acknowledge_seconds), 0.0),
            _count_if(due),
            _count_if(c.c.follow_up_on_time.is_(True)),
            _count_if(c.c.recomplaint.is_(True)),
        ).where(*_where(c, where, c.c.opened_at, period))
    ).one()
    total, acknowledged, mean, followed, on_time, again = (value or 0 for value in row)
    return ComplaintKpis(
        complaints=int(total),
        acknowledged=int(acknowledged),
        mean_acknowledge_seconds=float(mean),
        follow_ups_due=int(followed),
        follow_ups_on_time=int(on_time),
        follow_up_on_time_ratio=_ratio(on_time, followed),
        recomplaints=int(again),
        recomplaint_ratio=_ratio(again, total),
    )


# ----------------------------------------------------------------------------- pauses

# Ticketing's hold reasons as published ("waiting_customer", ...): every reason has a totals row
# and metric series from the start.
HOLD_REASONS = tuple(
    value.name.removeprefix("HOLD_REASON_").lower()
    for value in ticket_types.HoldReason.DESCRIPTOR.values
    if value.number
)
PAUSE_CLOCKS = ("first_response", "resolution")


def list_holds(
    *,
    session: Session,
    ticket_id: str = "",
    held_by: str = "",
    period: Period = Period(),
    page_size: int,
    before_sequence: int = 0,
) -> list[Any]:
    """Returns the holds of a ticket, or those `held_by` set within the period, newest first,
    before `before_sequence` (0: from the newest)."""
    h = holds
    clauses: list[ColumnElement[bool]] = []
    if ticket_id:
        clauses.append(h.c.ticket_id == ticket_id)
    if held_by:
        clauses.append(h.c.held_by == held_by)
    clauses += _where(h, KpiFilter(), h.c.held_at, period)
    if before_sequence:
        clauses.append(h.c.sequence < before_sequence)
    query = select(h).where(*clauses).order_by(h.c.sequence.desc()).limit(page_size)
    return list(session.execute(query))


def _hold_clauses(where: KpiFilter, period: Period) -> list[ColumnElement[bool]]:
    """The filter on holds: the agents who set them (agent_id / team), the ticket's channel,
    type and priority at the hold, held within the period."""
    h = holds
    clauses = _where(h, replace(where, agent_ids=()), h.c.held_at, period)
    if where.agent_ids:
        clauses.append(h.c.held_by.in_(where.agent_ids))
    return clauses


def _pause_sums(
    session: Session, clauses: list[ColumnElement[bool]], by_agent: bool
) -> list[d.PauseSums]:
    h = holds
    agent = h.c.held_by if by_agent else literal("")
    before = h.c.first_response_before_breach.is_(True) | h.c.resolution_before_breach.is_(True)
    query = (
        select(
            agent.label("agent"),
            h.c.reason,
            func.count(),
            _count_if(h.c.ended_by == ""),
            func.count(h.c.ticket_id.distinct()),
            func.coalesce(func.sum(h.c.first_response_paused_seconds), 0.0),
            func.coalesce(func.sum(h.c.resolution_paused_seconds), 0.0),
            _count_if(before),
        )
        .where(*clauses)
        .group_by(agent, h.c.reason)
        .order_by(agent, h.c.reason)
    )
    return [
        d.PauseSums(str(a), reason, int(n), int(held), int(t), float(fr), float(res), int(b))
        for a, reason, n, held, t, fr, res, b in session.execute(query)
    ]


def pause_report(*, session: Session, where: KpiFilter, period: Period) -> d.PauseReport:
    """Returns the holds set within the period per agent (who set them) and reason, and per
    reason: counts, paused business time per clock, pauses right before a breach, and the share
    of the agent's handled tickets held for the reason (docs/kpis.md "Pauses")."""
    clauses = _hold_clauses(where, period)
    h, t = holds, tickets
    held = [(row.held_by, row.ticket_id) for row in session.execute(
        select(h.c.held_by, h.c.ticket_id).where(*clauses).distinct()
    )]  # fmt: skip
    # Tickets opened in the period under the filter (agent_id: the assignee), per assignee.
    opened_clauses = _where(t, where, t.c.opened_at, period)
    opened = {
        str(agent): int(n)
        for agent, n in session.execute(
            select(t.c.agent_id, func.count()).where(*opened_clauses).group_by(t.c.agent_id)
        )
    }
    held_ids = sorted({ticket for _agent, ticket in held})
    counted: set[tuple[str, str]] = set()
    for start in range(0, len(held_ids), 500):
        chunk = held_ids[start : start + 500]
        counted.update(
            (str(agent), str(ticket))
            for ticket, agent in session.execute(
                select(t.c.ticket_id, t.c.agent_id).where(t.c.ticket_id.in_(chunk), *opened_clauses)
            )
        )
    handled = d.handled_tickets(opened=opened, held=held, counted=counted)
    return d.pause_report(
        rows=_pause_sums(session, clauses, by_agent=True),
        totals=_pause_sums(session, clauses, by_agent=False),
        handled=handled,
        reasons=HOLD_REASONS,
    )


def pause_totals(*, session: Session) -> list[d.PauseSums]:
    """Returns the all-time sums per reason (metrics)."""
    return _pause_sums(session, [], by_agent=False)
