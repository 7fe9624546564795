"""Incidents, teams and the response matrix. Pure: no I/O, no clock, no protobuf.

Risk index = sum of weight x normalised factor (DOMAIN §3); the level sets the response deadline;
the response matrix (data) says which teams are paged (red, yellow) or informed (grey); each
paged team's escalation chain pages its on-call, then the next step, until someone acknowledges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TITLE = 200
MAX_TEXT = 20_000


class Level(StrEnum):
    A = "a"
    B = "b"
    C = "c"


class Status(StrEnum):
    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Source(StrEnum):
    MANUAL = "manual"
    MONITORING = "monitoring"
    TICKET_SURGE = "ticket_surge"


class Engagement(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    GREY = "grey"


class ContactKind(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    EMAIL = "email"


OPEN = frozenset({Status.DECLARED, Status.ACKNOWLEDGED})
HIGHER = {Level.C: Level.B, Level.B: Level.A}


# ----------------------------------------------------------------------------- errors


class IncidentError(Exception):
    """Base of the incident domain's errors."""


class InvalidCommand(IncidentError):
    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in violations))
        self.violations = tuple(violations)


class IllegalTransition(IncidentError):
    pass


class NotFound(IncidentError):
    pass


class IncidentAlreadyExists(IllegalTransition):
    """An incident with that id was already declared."""


# ----------------------------------------------------------------------------- risk model


@dataclass(frozen=True)
class RiskFactors:
    users_affected: int = 0
    core_system: float = 0.0
    elapsed_minutes: float = 0.0
    average_handling_minutes: float = 0.0
    exposure: float = 0.0


@dataclass(frozen=True)
class RiskModel:
    """Weights and thresholds of the risk index; versioned so every incident records its model.

    Normalisation of each factor to 0..1:
    - scope: log10(1 + users) / log10(1 + scope_saturation_users), capped at 1 (a log scale:
      10 users matter, 100,000 users saturate);
    - business: the core-system coefficient as given (0 peripheral .. 1 core system);
    - timeliness: elapsed / average handling minutes, capped at 1;
    - exposure: sentiment / media exposure as given (the unassigned 0.1 of the source).
    """

    version: str = "risk-2026.1"
    scope_weight: float = 0.4
    business_weight: float = 0.3
    timeliness_weight: float = 0.2
    exposure_weight: float = 0.1
    level_a_threshold: float = 0.7
    level_b_threshold: float = 0.4
    scope_saturation_users: int = 100_000
    default_handling_minutes: float = 60.0
    response_minutes: Mapping[Level, int] = field(
        default_factory=lambda: {Level.A: 15, Level.B: 30, Level.C: 60}
    )

    def normalised(self, factors: RiskFactors) -> dict[str, float]:
        handling = factors.average_handling_minutes or self.default_handling_minutes
        scope = math.log10(1 + factors.users_affected) / math.log10(1 + self.scope_saturation_users)
        return {
            "scope": min(1.0, scope),
            "business": factors.core_system,
            "timeliness": min(1.0, factors.elapsed_minutes / handling),
            "exposure": factors.exposure,
        }

    def index(self, factors: RiskFactors) -> float:
        x = self.normalised(factors)
        total = (
            self.scope_weight * x["scope"]
            + self.business_weight * x["business"]
            + self.timeliness_weight * x["timeliness"]
            + self.exposure_weight * x["exposure"]
        )
        return round(total, 4)

    def level(self, index: float) -> Level:
        if index >= self.level_a_threshold:
            return Level.A
        if index >= self.level_b_threshold:
            return Level.B
        return Level.C

    def response_due(self, level: Level, since: datetime) -> datetime:
        return since + timedelta(minutes=self.response_minutes[level])


def validate_factors(factors: RiskFactors | None) -> list[tuple[str, str]]:
    """Returns field violations of risk factors (None means all zero)."""
    if factors is None:
        return []
    violations = []
    if factors.users_affected < 0:
        violations.append(("factors.users_affected", "must not be negative"))
    for name in ("core_system", "exposure"):
        value = getattr(factors, name)
        if not 0 <= value <= 1 or math.isnan(value):
            violations.append((f"factors.{name}", "must be between 0 and 1"))
    if factors.elapsed_minutes < 0 or math.isnan(factors.elapsed_minutes):
        violations.append(("factors.elapsed_minutes", "must not be negative"))
    if factors.average_handling_minutes < 0 or math.isnan(factors.average_handling_minutes):
        violations.append(("factors.average_handling_minutes", "must not be negative"))
    return violations


# ----------------------------------------------------------------------------- teams


@dataclass(frozen=True)
class ContactPoint:
    kind: ContactKind | None
    address: str


@dataclass(frozen=True)
class Member:
    member_id: str
    name: str = ""
    contacts: tuple[ContactPoint, ...] = ()


@dataclass(frozen=True)
class Rotation:
    member_ids: tuple[str, ...] = ()
    handoff_time: str = "09:00"
    time_zone: str = "UTC"
    shift_days: int = 7
    start_date: str = "2026-01-05"


@dataclass(frozen=True)
class Override:
    member_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class EscalationStep:
    target: str
    wait_seconds: int


@dataclass(frozen=True)
class EscalationPolicy:
    steps: tuple[EscalationStep, ...] = ()
    repeat: int = 1


DEFAULT_ESCALATION = EscalationPolicy(
    (EscalationStep("oncall", 300), EscalationStep("next", 300), EscalationStep("manager", 300)),
    2,
)


@dataclass(frozen=True)
class Team:
    team_id: str
    name: str = ""
    members: tuple[Member, ...] = ()
    rotation: Rotation | None = None
    overrides: tuple[Override, ...] = ()
    escalation: EscalationPolicy | None = None
    manager_id: str = ""

    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    def chain(self) -> EscalationPolicy:
        return self.escalation if self.escalation and self.escalation.steps else DEFAULT_ESCALATION

    def on_call(self, at: datetime) -> str:
        """Returns who is on call at `at`: an active override, else the rotation's shift."""
        for override in self.overrides:
            if override.starts_at <= at < override.ends_at:
                return override.member_id
        order = self._order()
        if not order:
            return ""
        rotation = self.rotation or Rotation()
        zone = ZoneInfo(rotation.time_zone or "UTC")
        hour, minute = (int(part) for part in rotation.handoff_time.split(":"))
        start = datetime.combine(date.fromisoformat(rotation.start_date), time(hour, minute), zone)
        shift = math.floor((at - start) / timedelta(days=max(rotation.shift_days, 1)))
        return order[shift % len(order)]

    def resolve(self, target: str, at: datetime) -> str:
        """Returns the member an escalation step targets (falling back to the on-call)."""
        current = self.on_call(at)
        if target == "next":
            order = self._order()
            if current in order and len(order) > 1:
                return order[(order.index(current) + 1) % len(order)]
        elif target == "manager" and self.manager_id:
            return self.manager_id
        elif target.startswith("member:") and self.member(target.removeprefix("member:")):
            return target.removeprefix("member:")
        return current

    def _order(self) -> tuple[str, ...]:
        if self.rotation and self.rotation.member_ids:
            return self.rotation.member_ids
        return tuple(m.member_id for m in self.members)

    def contacts_of(self, member_id: str) -> tuple[ContactPoint, ...]:
        member = self.member(member_id)
        return member.contacts if member else ()


def validate_team(team: Team) -> list[tuple[str, str]]:
    """Returns field violations of a team definition."""
    violations: list[tuple[str, str]] = []
    if not ID_PATTERN.fullmatch(team.team_id):
        violations.append(("team.team_id", "lower-case letters, digits, '-', '_' (1-64)"))
    ids = [member.member_id for member in team.members]
    if not ids:
        violations.append(("team.members", "a team needs at least one member"))
    if len(set(ids)) != len(ids):
        violations.append(("team.members", "member ids must be unique"))
    for index, member in enumerate(team.members):
        if not member.member_id:
            violations.append((f"team.members[{index}].member_id", "must not be empty"))
        for c_index, contact in enumerate(member.contacts):
            where = f"team.members[{index}].contacts[{c_index}]"
            violations += _validate_contact(contact, where)
    known = set(ids)
    rotation = team.rotation
    if rotation is not None:
        violations += _validate_rotation(rotation, known)
    for index, override in enumerate(team.overrides):
        if override.member_id not in known:
            violations.append((f"team.overrides[{index}].member_id", "not a member of the team"))
        if override.ends_at <= override.starts_at:
            violations.append((f"team.overrides[{index}]", "ends before it starts"))
    if team.escalation is not None:
        violations += _validate_escalation(team.escalation, known)
    if team.manager_id and team.manager_id not in known:
        violations.append(("team.manager_id", "not a member of the team"))
    return violations


def _validate_contact(contact: ContactPoint, where: str) -> list[tuple[str, str]]:
    if contact.kind is None:
        return [(f"{where}.kind", "must be specified")]
    if not contact.address:
        return [(f"{where}.address", "must not be empty")]
    if contact.kind in (ContactKind.WEBHOOK, ContactKind.SLACK) and not re.match(
        r"^https?://", contact.address
    ):
        return [(f"{where}.address", "must be an http(s) URL")]
    if contact.kind is ContactKind.EMAIL and not re.fullmatch(r"[^@\s]+@[^@\s]+", contact.address):
        return [(f"{where}.address", "must be an e-mail address")]
    return []


def _validate_rotation(rotation: Rotation, known: set[str]) -> list[tuple[str, str]]:
    violations = []
    unknown = [m for m in rotation.member_ids if m not in known]
    if unknown:
        violations.append(("team.rotation.member_ids", f"not members: {', '.join(unknown)}"))
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", rotation.handoff_time):
        violations.append(("team.rotation.handoff_time", "must be HH:MM"))
    try:
        ZoneInfo(rotation.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        violations.append(("team.rotation.time_zone", f"unknown time zone {rotation.time_zone!r}"))
    if rotation.shift_days < 1:
        violations.append(("team.rotation.shift_days", "must be at least 1"))
    try:
        date.fromisoformat(rotation.start_date)
    except ValueError:
        violations.append(("team.rotation.start_date", "must be an ISO date"))
    return violations


def _validate_escalation(policy: EscalationPolicy, known: set[str]) -> list[tuple[str, str]]:
    violations = []
    if policy.repeat < 1:
        violations.append(("team.escalation.repeat", "must be at least 1"))
    for index, step in enumerate(policy.steps):
        target = step.target
        member = target.removeprefix("member:")
        if target not in ("oncall", "next", "manager") and not (
            target.startswith("member:") and member in known
        ):
            violations.append(
                (f"team.escalation.steps[{index}].target", "oncall, next, manager or member:<id>")
            )
        if step.wait_seconds < 1:
            violations.append((f"team.escalation.steps[{index}].wait_seconds", "must be >= 1"))
    return violations


# ----------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class MatrixCell:
    team_id: str
    engagement: Engagement | None


@dataclass(frozen=True)
class MatrixRow:
    incident_type: str
    title: str = ""
    cells: tuple[MatrixCell, ...] = ()


@dataclass(frozen=True)
class Matrix:
    rows: Mapping[str, MatrixRow] = field(default_factory=dict)
    version: int = 0


def validate_matrix(rows: Sequence[MatrixRow], teams: set[str]) -> list[tuple[str, str]]:
    """Returns violations: unknown teams, duplicate types, unspecified engagements."""
    violations: list[tuple[str, str]] = []
    if not rows:
        violations.append(("rows", "the matrix needs at least one incident type"))
    types = [row.incident_type for row in rows]
    if len(set(types)) != len(types):
        violations.append(("rows", "incident types must be unique"))
    for index, row in enumerate(rows):
        if not ID_PATTERN.fullmatch(row.incident_type):
            violations.append((f"rows[{index}].incident_type", "lower-case id like server_crash"))
        if not any(cell.engagement is Engagement.RED for cell in row.cells):
            violations.append((f"rows[{index}].cells", "needs a red (leading) team"))
        for c_index, cell in enumerate(row.cells):
            if cell.team_id not in teams:
                violations.append(
                    (f"rows[{index}].cells[{c_index}].team_id", f"no team {cell.team_id!r}")
                )
            if cell.engagement is None:
                violations.append((f"rows[{index}].cells[{c_index}].engagement", "unspecified"))
    return violations


def effective_engagement(engagement: Engagement, level: Level) -> tuple[Engagement, bool]:
    """Returns the engagement at a level and whether the team is paged.

    Levels A and B engage teams exactly as the matrix says (red and yellow paged, grey informed).
    Level C (one channel) pages only the red team; yellow teams are informed instead.
    """
    if engagement is Engagement.GREY:
        return engagement, False
    if level is Level.C and engagement is Engagement.YELLOW:
        return engagement, False
    return engagement, True


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class IncidentDeclared:
    incident_id: str
    type: str
    title: str
    description: str
    source: Source
    factors: RiskFactors | None
    risk_index: float
    level: Level
    drill: bool
    response_due_at: datetime
    matrix_version: int
    ticket_ids: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()
    surge_key: str = ""


@dataclass(frozen=True)
class TeamEngaged:
    team_id: str
    engagement: Engagement
    paged: bool


@dataclass(frozen=True)
class PageRequested:
    page_id: str
    team_id: str
    member_id: str
    step: int
    round: int
    contacts: tuple[ContactPoint, ...]
    ack_due_at: datetime
    engagement: Engagement
    escalated_from: str = ""


@dataclass(frozen=True)
class TeamInformed:
    team_id: str
    member_id: str
    contacts: tuple[ContactPoint, ...]
    notice_id: str


@dataclass(frozen=True)
class NotificationDelivered:
    notice_id: str
    kind: ContactKind
    attempts: int


@dataclass(frozen=True)
class NotificationFailed:
    notice_id: str
    kind: ContactKind
    attempts: int
    error: str


@dataclass(frozen=True)
class PageAcknowledged:
    page_id: str
    member_id: str


@dataclass(frozen=True)
class PageEscalated:
    page_id: str
    reason: str


@dataclass(frozen=True)
class EscalationExhausted:
    team_id: str
    page_id: str


@dataclass(frozen=True)
class ResponseDeadlineMissed:
    level: Level
    due_at: datetime


@dataclass(frozen=True)
class IncidentReassessed:
    factors: RiskFactors | None
    risk_index: float
    from_level: Level
    to_level: Level
    reason: str
    response_due_at: datetime


@dataclass(frozen=True)
class RoleAssigned:
    role: str
    member_id: str


@dataclass(frozen=True)
class UpdateAdded:
    message: str
    status_note: str = ""
    public_statement_draft: str = ""


@dataclass(frozen=True)
class IncidentEscalated:
    from_level: Level
    to_level: Level
    reason: str
    response_due_at: datetime


@dataclass(frozen=True)
class IncidentResolved:
    summary: str


@dataclass(frozen=True)
class PostIncidentReview:
    root_cause: str
    prevention_actions: tuple[str, ...] = ()
    knowledge_base_entry: str = ""


@dataclass(frozen=True)
class IncidentClosed:
    review: PostIncidentReview | None


@dataclass(frozen=True)
class TicketsLinked:
    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TeamDefined:
    team: Team


@dataclass(frozen=True)
class ResponseMatrixChanged:
    rows: tuple[MatrixRow, ...]


# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class DeclareIncident:
    incident_id: str
    type: str
    title: str
    description: str = ""
    source: Source | None = None
    factors: RiskFactors | None = None
    drill: bool = False
    ticket_ids: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()
    surge_key: str = ""


@dataclass(frozen=True)
class ReassessIncident:
    factors: RiskFactors | None
    reason: str


@dataclass(frozen=True)
class AssignRole:
    role: str
    member_id: str


@dataclass(frozen=True)
class AddUpdate:
    message: str
    status_note: str = ""
    public_statement_draft: str = ""


@dataclass(frozen=True)
class AcknowledgePage:
    page_id: str
    member_id: str


@dataclass(frozen=True)
class EscalateIncident:
    reason: str


@dataclass(frozen=True)
class ResolveIncident:
    summary: str = ""


@dataclass(frozen=True)
class CloseIncident:
    review: PostIncidentReview | None


@dataclass(frozen=True)
class LinkTickets:
    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordDelivery:
    notice_id: str
    kind: ContactKind
    attempts: int
    error: str = ""


@dataclass(frozen=True)
class FirePageTimer:
    page_id: str


@dataclass(frozen=True)
class FireResponseTimer:
    pass


Command = (
    DeclareIncident
    | ReassessIncident
    | AssignRole
    | AddUpdate
    | AcknowledgePage
    | EscalateIncident
    | ResolveIncident
    | CloseIncident
    | LinkTickets
    | RecordDelivery
    | FirePageTimer
    | FireResponseTimer
)


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class PageState:
    page_id: str
    team_id: str
    member_id: str
    step: int
    round: int
    engagement: Engagement
    requested_at: datetime
    ack_due_at: datetime
    contacts: tuple[ContactPoint, ...] = ()
    acknowledged_at: datetime | None = None
    escalated: bool = False
    deliveries: Mapping[ContactKind, tuple[bool, int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident:
    incident_id: str
    exists: bool = False
    type: str = ""
    title: str = ""
    description: str = ""
    source: Source = Source.MANUAL
    factors: RiskFactors | None = None
    risk_index: float = 0.0
    level: Level = Level.C
    status: Status = Status.DECLARED
    drill: bool = False
    declared_at: datetime | None = None
    response_due_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    response_deadline_missed: bool = False
    matrix_version: int = 0
    teams: Mapping[str, tuple[Engagement, bool]] = field(default_factory=dict)
    pages: Mapping[str, PageState] = field(default_factory=dict)
    notices: Mapping[str, tuple[str, tuple[ContactPoint, ...]]] = field(default_factory=dict)
    exhausted: frozenset[str] = frozenset()
    roles: Mapping[str, str] = field(default_factory=dict)
    timeline: tuple[tuple[datetime, str, str], ...] = ()
    ticket_ids: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()
    review: PostIncidentReview | None = None
    public_statement_draft: str = ""
    surge_key: str = ""

    def team_acknowledged(self, team_id: str) -> bool:
        return any(p.acknowledged_at for p in self.pages.values() if p.team_id == team_id)

    def deliveries_of(self, notice_id: str) -> Mapping[ContactKind, tuple[bool, int, str]]:
        page = self.pages.get(notice_id)
        return page.deliveries if page else self.delivered_notices.get(notice_id, {})

    delivered_notices: Mapping[str, Mapping[ContactKind, tuple[bool, int, str]]] = field(
        default_factory=dict
    )


def initial(incident_id: str) -> Incident:
    return Incident(incident_id=incident_id)


# ----------------------------------------------------------------------------- decide


@dataclass(frozen=True)
class Context:
    """What decide may consult: the time, the risk model, the matrix and the teams."""

    now: datetime
    risk: RiskModel
    matrix: Matrix
    teams: Mapping[str, Team]


IncidentEvent = Any


def decide(state: Incident, command: Command, ctx: Context) -> list[IncidentEvent]:
    """Returns the events of a command; raises an IncidentError when it is not allowed."""
    if isinstance(command, DeclareIncident):
        return _declare(state, command, ctx)
    if not state.exists:
        raise NotFound(f"incident {state.incident_id} does not exist")
    return _HANDLERS[type(command)](state, command, ctx)  # type: ignore[operator]


def _require(violations: list[tuple[str, str]]) -> None:
    if violations:
        raise InvalidCommand(violations)


def _text(name: str, value: str, *, required: bool, limit: int) -> list[tuple[str, str]]:
    if required and not value.strip():
        return [(name, "must not be empty")]
    if len(value) > limit:
        return [(name, f"must be at most {limit} characters")]
    return []


def _declare(state: Incident, command: DeclareIncident, ctx: Context) -> list[IncidentEvent]:
    violations = _text("title", command.title, required=True, limit=MAX_TITLE)
    violations += _text("description", command.description, required=False, limit=MAX_TEXT)
    violations += validate_factors(command.factors)
    if command.type not in ctx.matrix.rows:
        known = ", ".join(sorted(ctx.matrix.rows)) or "none"
        violations.append(("type", f"unknown incident type {command.type!r}; known: {known}"))
    _require(violations)
    if state.exists:
        raise IncidentAlreadyExists(f"incident {state.incident_id} already exists")
    factors = command.factors or RiskFactors()
    index = ctx.risk.index(factors)
    level = ctx.risk.level(index)
    declared = IncidentDeclared(
        incident_id=state.incident_id,
        type=command.type,
        title=command.title.strip(),
        description=command.description,
        source=command.source or Source.MANUAL,
        factors=factors,
        risk_index=index,
        level=level,
        drill=command.drill,
        response_due_at=ctx.risk.response_due(level, ctx.now),
        matrix_version=ctx.matrix.version,
        ticket_ids=command.ticket_ids,
        customer_ids=command.customer_ids,
        surge_key=command.surge_key,
    )
    fresh = evolve(state, declared, ctx.now)
    return [declared, *_engage(fresh, level, ctx)]


def _engage(state: Incident, level: Level, ctx: Context) -> list[IncidentEvent]:
    """Engages the matrix row's teams at `level`: pages those not yet paged, informs the rest."""
    events: list[IncidentEvent] = []
    row = ctx.matrix.rows.get(state.type)
    cells = row.cells if row else ()
    page_number = len(state.pages)
    notice_number = len(state.notices)
    for cell in sorted(cells, key=lambda c: _RANK[c.engagement or Engagement.GREY]):
        team = ctx.teams.get(cell.team_id)
        engagement, paged = effective_engagement(cell.engagement or Engagement.GREY, level)
        already = state.teams.get(cell.team_id)
        if already is not None and (already[1] or not paged):
            continue
        events.append(TeamEngaged(cell.team_id, engagement, paged))
        if team is None:
            continue
        member = team.on_call(ctx.now)
        if paged:
            step = team.chain().steps[0]
            events.append(
                PageRequested(
                    page_id=f"{state.incident_id}-p{page_number}",
                    team_id=team.team_id,
                    member_id=team.resolve(step.target, ctx.now) or member,
                    step=0,
                    round=0,
                    contacts=team.contacts_of(team.resolve(step.target, ctx.now) or member),
                    ack_due_at=ctx.now + timedelta(seconds=step.wait_seconds),
                    engagement=engagement,
                )
            )
            page_number += 1
        elif already is None:
            events.append(
                TeamInformed(
                    team.team_id,
                    member,
                    team.contacts_of(member),
                    f"{state.incident_id}-n{notice_number}",
                )
            )
            notice_number += 1
    return events


_RANK = {Engagement.RED: 0, Engagement.YELLOW: 1, Engagement.GREY: 2}


def _not_in(state: Incident, allowed: frozenset[Status], action: str) -> None:
    if state.status not in allowed:
        raise IllegalTransition(
            f"cannot {action} incident {state.incident_id}: it is {state.status.value}"
        )


def _reassess(state: Incident, command: ReassessIncident, ctx: Context) -> list[IncidentEvent]:
    violations = validate_factors(command.factors)
    violations += _text("reason", command.reason, required=True, limit=MAX_TITLE)
    _require(violations)
    _not_in(state, OPEN, "reassess")
    factors = command.factors or RiskFactors()
    index = ctx.risk.index(factors)
    level = ctx.risk.level(index)
    assert state.declared_at is not None
    due = ctx.risk.response_due(level, state.declared_at)
    event = IncidentReassessed(factors, index, state.level, level, command.reason, due)
    return [event, *_engage(evolve(state, event, ctx.now), level, ctx)]


def _escalate(state: Incident, command: EscalateIncident, ctx: Context) -> list[IncidentEvent]:
    _require(_text("reason", command.reason, required=True, limit=MAX_TITLE))
    _not_in(state, OPEN, "escalate")
    higher = HIGHER.get(state.level)
    if higher is None:
        raise IllegalTransition(f"incident {state.incident_id} is already level A")
    assert state.declared_at is not None
    due = ctx.risk.response_due(higher, state.declared_at)
    event = IncidentEscalated(state.level, higher, command.reason, due)
    return [event, *_engage(evolve(state, event, ctx.now), higher, ctx)]


def _assign_role(state: Incident, command: AssignRole, ctx: Context) -> list[IncidentEvent]:
    violations = (
        [] if ROLE_PATTERN.fullmatch(command.role) else [("role", "like incident_commander")]
    )
    violations += _text("member_id", command.member_id, required=True, limit=100)
    _require(violations)
    _not_in(state, OPEN | {Status.RESOLVED}, "assign a role in")
    if state.roles.get(command.role) == command.member_id:
        return []
    return [RoleAssigned(command.role, command.member_id)]


def _add_update(state: Incident, command: AddUpdate, ctx: Context) -> list[IncidentEvent]:
    violations = _text("message", command.message, required=True, limit=MAX_TEXT)
    violations += _text("status_note", command.status_note, required=False, limit=MAX_TITLE)
    violations += _text(
        "public_statement_draft", command.public_statement_draft, required=False, limit=MAX_TEXT
    )
    _require(violations)
    _not_in(state, OPEN | {Status.RESOLVED}, "update")
    return [UpdateAdded(command.message, command.status_note, command.public_statement_draft)]


def _acknowledge(state: Incident, command: AcknowledgePage, ctx: Context) -> list[IncidentEvent]:
    _require(_text("member_id", command.member_id, required=True, limit=100))
    page = state.pages.get(command.page_id)
    if page is None:
        raise NotFound(f"page {command.page_id} does not exist")
    if page.acknowledged_at is not None:
        return []
    _not_in(state, OPEN | {Status.RESOLVED}, "acknowledge a page of")
    return [PageAcknowledged(command.page_id, command.member_id)]


def _resolve(state: Incident, command: ResolveIncident, ctx: Context) -> list[IncidentEvent]:
    _require(_text("summary", command.summary, required=False, limit=MAX_TEXT))
    _not_in(state, OPEN, "resolve")
    return [IncidentResolved(command.summary)]


def _close(state: Incident, command: CloseIncident, ctx: Context) -> list[IncidentEvent]:
    review = command.review
    violations = []
    if review is None or not review.root_cause.strip():
        violations.append(("review.root_cause", "a post-incident review needs the root cause"))
    elif not any(action.strip() for action in review.prevention_actions):
        violations.append(("review.prevention_actions", "name at least one prevention action"))
    _require(violations)
    _not_in(state, frozenset({Status.RESOLVED}), "close")
    return [IncidentClosed(review)]


def _link(state: Incident, command: LinkTickets, ctx: Context) -> list[IncidentEvent]:
    new_tickets = tuple(t for t in command.ticket_ids if t not in state.ticket_ids)
    new_customers = tuple(c for c in command.customer_ids if c not in state.customer_ids)
    if not new_tickets and not new_customers:
        return []
    return [TicketsLinked(new_tickets, new_customers)]


def _record_delivery(state: Incident, command: RecordDelivery, ctx: Context) -> list[IncidentEvent]:
    if command.notice_id not in state.pages and command.notice_id not in state.notices:
        raise NotFound(f"notification {command.notice_id} does not exist")
    if command.kind in state.deliveries_of(command.notice_id):
        return []
    if command.error:
        return [
            NotificationFailed(command.notice_id, command.kind, command.attempts, command.error)
        ]
    return [NotificationDelivered(command.notice_id, command.kind, command.attempts)]


def _fire_page(state: Incident, command: FirePageTimer, ctx: Context) -> list[IncidentEvent]:
    page = state.pages.get(command.page_id)
    if (
        page is None
        or page.escalated
        or page.acknowledged_at is not None
        or page.ack_due_at > ctx.now
        or state.status not in OPEN
        or state.team_acknowledged(page.team_id)
    ):
        return []
    team = ctx.teams.get(page.team_id) or Team(page.team_id)
    chain = team.chain()
    step, round_ = page.step + 1, page.round
    if step >= len(chain.steps):
        step, round_ = 0, round_ + 1
    escalated = PageEscalated(page.page_id, "not acknowledged in time")
    if round_ >= chain.repeat:
        return [escalated, EscalationExhausted(page.team_id, page.page_id)]
    target = chain.steps[step]
    member = team.resolve(target.target, ctx.now)
    return [
        escalated,
        PageRequested(
            page_id=f"{state.incident_id}-p{len(state.pages)}",
            team_id=page.team_id,
            member_id=member,
            step=step,
            round=round_,
            contacts=team.contacts_of(member),
            ack_due_at=ctx.now + timedelta(seconds=target.wait_seconds),
            engagement=page.engagement,
            escalated_from=page.page_id,
        ),
    ]


def _fire_response(
    state: Incident, command: FireResponseTimer, ctx: Context
) -> list[IncidentEvent]:
    due = state.response_due_at
    if (
        state.status is not Status.DECLARED
        or state.response_deadline_missed
        or due is None
        or due > ctx.now
    ):
        return []
    return [ResponseDeadlineMissed(state.level, due)]


_HANDLERS = {
    ReassessIncident: _reassess,
    AssignRole: _assign_role,
    AddUpdate: _add_update,
    AcknowledgePage: _acknowledge,
    EscalateIncident: _escalate,
    ResolveIncident: _resolve,
    CloseIncident: _close,
    LinkTickets: _link,
    RecordDelivery: _record_delivery,
    FirePageTimer: _fire_page,
    FireResponseTimer: _fire_response,
}


# ----------------------------------------------------------------------------- evolve


def _note(
    state: Incident, at: datetime, kind: str, text: str
) -> tuple[tuple[datetime, str, str], ...]:
    return (*state.timeline, (at, kind, text))


def evolve(state: Incident, event: IncidentEvent, at: datetime) -> Incident:
    """Returns the incident after one event recorded at `at`."""
    match event:
        case IncidentDeclared():
            return replace(
                state,
                exists=True,
                type=event.type,
                title=event.title,
                description=event.description,
                source=event.source,
                factors=event.factors,
                risk_index=event.risk_index,
                level=event.level,
                status=Status.DECLARED,
                drill=event.drill,
                declared_at=at,
                response_due_at=event.response_due_at,
                matrix_version=event.matrix_version,
                ticket_ids=event.ticket_ids,
                customer_ids=event.customer_ids,
                surge_key=event.surge_key,
                timeline=_note(state, at, "declared", f"level {event.level.value.upper()}"),
            )
        case TeamEngaged():
            teams = {**state.teams, event.team_id: (event.engagement, event.paged)}
            return replace(state, teams=teams)
        case PageRequested():
            page = PageState(
                event.page_id,
                event.team_id,
                event.member_id,
                event.step,
                event.round,
                event.engagement,
                at,
                event.ack_due_at,
                event.contacts,
            )
            text = f"paged {event.member_id} ({event.team_id})"
            pages = {**state.pages, event.page_id: page}
            return replace(state, pages=pages, timeline=_note(state, at, "page", text))
        case TeamInformed():
            notices = {**state.notices, event.notice_id: (event.team_id, event.contacts)}
            text = f"informed {event.team_id}"
            return replace(state, notices=notices, timeline=_note(state, at, "informed", text))
        case NotificationDelivered() | NotificationFailed():
            return _record(state, event)
        case PageAcknowledged():
            page = replace(state.pages[event.page_id], acknowledged_at=at)
            status = Status.ACKNOWLEDGED if state.status is Status.DECLARED else state.status
            return replace(
                state,
                pages={**state.pages, event.page_id: page},
                status=status,
                acknowledged_at=state.acknowledged_at or at,
                timeline=_note(state, at, "acknowledged", f"{event.member_id} acknowledged"),
            )
        case PageEscalated():
            page = replace(state.pages[event.page_id], escalated=True)
            return replace(state, pages={**state.pages, event.page_id: page})
        case EscalationExhausted():
            text = f"nobody in {event.team_id} acknowledged"
            return replace(
                state,
                exhausted=state.exhausted | {event.team_id},
                timeline=_note(state, at, "exhausted", text),
            )
        case ResponseDeadlineMissed():
            return replace(
                state,
                response_deadline_missed=True,
                timeline=_note(state, at, "deadline_missed", "response deadline missed"),
            )
        case IncidentReassessed():
            text = _level_change(event.from_level, event.to_level, event.reason)
            return replace(
                state,
                factors=event.factors,
                risk_index=event.risk_index,
                level=event.to_level,
                response_due_at=event.response_due_at,
                timeline=_note(state, at, "reassessed", text),
            )
        case IncidentEscalated():
            text = _level_change(event.from_level, event.to_level, event.reason)
            return replace(
                state,
                level=event.to_level,
                response_due_at=event.response_due_at,
                timeline=_note(state, at, "escalated", text),
            )
        case RoleAssigned():
            roles = {**state.roles, event.role: event.member_id}
            text = f"{event.role}: {event.member_id}"
            return replace(state, roles=roles, timeline=_note(state, at, "role", text))
        case UpdateAdded():
            draft = event.public_statement_draft or state.public_statement_draft
            return replace(
                state,
                public_statement_draft=draft,
                timeline=_note(state, at, "update", event.message),
            )
        case IncidentResolved():
            return replace(
                state,
                status=Status.RESOLVED,
                resolved_at=at,
                timeline=_note(state, at, "resolved", event.summary),
            )
        case IncidentClosed():
            return replace(
                state,
                status=Status.CLOSED,
                closed_at=at,
                review=event.review,
                timeline=_note(state, at, "closed", "post-incident review recorded"),
            )
        case TicketsLinked():
            return replace(
                state,
                ticket_ids=(*state.ticket_ids, *event.ticket_ids),
                customer_ids=(*state.customer_ids, *event.customer_ids),
            )
    return state


def _level_change(before: Level, after: Level, reason: str) -> str:
    return f"{before.value.upper()} -> {after.value.upper()}: {reason}"


def _record(state: Incident, event: NotificationDelivered | NotificationFailed) -> Incident:
    outcome = (
        (True, event.attempts, "")
        if isinstance(event, NotificationDelivered)
        else (False, event.attempts, event.error)
    )
    page = state.pages.get(event.notice_id)
    if page is not None:
        updated = replace(page, deliveries={**page.deliveries, event.kind: outcome})
        return replace(state, pages={**state.pages, event.notice_id: updated})
    current = state.delivered_notices.get(event.notice_id, {})
    notices = {**state.delivered_notices, event.notice_id: {**current, event.kind: outcome}}
    return replace(state, delivered_notices=notices)


# ----------------------------------------------------------------------------- teams / matrix


def evolve_team(state: Team | None, event: TeamDefined, at: datetime) -> Team | None:
    return event.team


def evolve_matrix(state: Matrix, event: ResponseMatrixChanged, at: datetime) -> Matrix:
    return Matrix({row.incident_type: row for row in event.rows}, state.version)


def decide_team(current: Team | None, team: Team) -> list[TeamDefined]:
    """Returns the event that (re)defines a team; nothing when the definition is unchanged."""
    _require(validate_team(team))
    if current == team:
        return []
    return [TeamDefined(team)]


def decide_matrix(
    current: Matrix, rows: Sequence[MatrixRow], teams: set[str]
) -> list[ResponseMatrixChanged]:
    """Returns the event of a new matrix version; nothing when the rows are unchanged."""
    _require(validate_matrix(rows, teams))
    if {row.incident_type: row for row in rows} == dict(current.rows):
        return []
    return [ResponseMatrixChanged(tuple(rows))]
