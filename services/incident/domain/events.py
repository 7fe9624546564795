"""The events of the incident, team and response-matrix aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from incident.domain.escalation import PlannedContact
from incident.domain.matrix import MatrixCell, MatrixRow
from incident.domain.oncall import ContactPoint, Team
from incident.domain.risk import RiskFactors
from incident.domain.schedules import Override, ShiftSwap
from incident.domain.values import ContactKind, Engagement, Level, Source


@dataclass(frozen=True)
class IncidentDeclared:
    """An incident was declared: its risk assessment, level and response deadline."""

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
    extra_teams: tuple[MatrixCell, ...] = ()
    level_floor: Level | None = None


@dataclass(frozen=True)
class TeamEngaged:
    """A matrix team was engaged at the incident's level (paged, or only informed)."""

    team_id: str
    engagement: Engagement
    paged: bool


@dataclass(frozen=True)
class PageRequested:
    """A member was paged; unacknowledged by `ack_due_at`, the chain escalates."""

    page_id: str
    team_id: str
    member_id: str
    step: int
    round: int
    contacts: tuple[ContactPoint, ...]
    ack_due_at: datetime
    engagement: Engagement
    escalated_from: str = ""
    # The policy the team's chain runs ('' the team's own escalation) and the member's contact
    # plan; `contacts` are the plan's contact points due at once (all of them without a plan).
    policy_id: str = ""
    plan: tuple[PlannedContact, ...] = ()


@dataclass(frozen=True)
class PageContactsDue:
    """A page still unacknowledged `delay_seconds` after it was requested: its contact points
    of that delay in the member's plan are to be sent now."""

    page_id: str
    delay_seconds: int
    contacts: tuple[ContactPoint, ...]


@dataclass(frozen=True)
class TeamInformed:
    """A team was informed without being paged (grey, or yellow at level C)."""

    team_id: str
    member_id: str
    contacts: tuple[ContactPoint, ...]
    notice_id: str


@dataclass(frozen=True)
class NotificationDelivered:
    """A page or notice reached one contact kind."""

    notice_id: str
    kind: ContactKind
    attempts: int


@dataclass(frozen=True)
class NotificationFailed:
    """A page or notice could not be sent over one contact kind."""

    notice_id: str
    kind: ContactKind
    attempts: int
    error: str


@dataclass(frozen=True)
class PageAcknowledged:
    """A paged member acknowledged; the team's escalation stops."""

    page_id: str
    member_id: str


@dataclass(frozen=True)
class PageEscalated:
    """A page was not acknowledged in time; the next step takes over."""

    page_id: str
    reason: str


@dataclass(frozen=True)
class EscalationExhausted:
    """Every round of a team's escalation chain went unacknowledged."""

    team_id: str
    page_id: str


@dataclass(frozen=True)
class ResponseDeadlineMissed:
    """Nobody acknowledged within the level's response time."""

    level: Level
    due_at: datetime


@dataclass(frozen=True)
class IncidentReassessed:
    """New risk factors gave a new index, level and response deadline."""

    factors: RiskFactors | None
    risk_index: float
    from_level: Level
    to_level: Level
    reason: str
    response_due_at: datetime


@dataclass(frozen=True)
class RoleAssigned:
    """A member took a role (e.g. incident_commander)."""

    role: str
    member_id: str


@dataclass(frozen=True)
class UpdateAdded:
    """A progress update, optionally with a draft public statement."""

    message: str
    status_note: str = ""
    public_statement_draft: str = ""


@dataclass(frozen=True)
class IncidentEscalated:
    """The incident was raised one level by hand."""

    from_level: Level
    to_level: Level
    reason: str
    response_due_at: datetime


@dataclass(frozen=True)
class IncidentResolved:
    """The incident's impact ended."""

    summary: str


@dataclass(frozen=True)
class PostIncidentReview:
    """The review closing an incident: root cause and prevention actions."""

    root_cause: str
    prevention_actions: tuple[str, ...] = ()
    knowledge_base_entry: str = ""


@dataclass(frozen=True)
class IncidentClosed:
    """The incident was closed with its post-incident review."""

    review: PostIncidentReview | None


@dataclass(frozen=True)
class TicketsLinked:
    """Customer tickets (and their customers) were linked to the incident."""

    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TeamDefined:
    """A team was defined or redefined (the team aggregate's one event)."""

    team: Team


@dataclass(frozen=True)
class OverrideAdded:
    """A one-off override was added at runtime (`override.added_by`: who added it)."""

    override: Override


@dataclass(frozen=True)
class OverrideRemoved:
    """A runtime override was removed (`override`: as it was; `by`: who removed it)."""

    override: Override
    by: str


@dataclass(frozen=True)
class SchedulePruned:
    """Runtime overrides and swaps that ended before `ended_before` (now minus the schedule
    retention) were dropped from the team's state: they cannot decide anything any more."""

    override_ids: tuple[str, ...]
    swap_ids: tuple[str, ...]
    ended_before: datetime


@dataclass(frozen=True)
class ShiftSwapRequested:
    """A member asked another to take one of their shifts (status requested)."""

    swap: ShiftSwap


@dataclass(frozen=True)
class ShiftSwapAccepted:
    """The counterpart (or a supervisor) accepted a swap: the shifts move."""

    swap_id: str
    by: str


@dataclass(frozen=True)
class ShiftSwapDeclined:
    """The counterpart (or a supervisor) declined a swap."""

    swap_id: str
    by: str


@dataclass(frozen=True)
class ShiftSwapCancelled:
    """The requester (or a supervisor) withdrew a swap."""

    swap_id: str
    by: str


TeamEvent = (
    TeamDefined
    | OverrideAdded
    | OverrideRemoved
    | SchedulePruned
    | ShiftSwapRequested
    | ShiftSwapAccepted
    | ShiftSwapDeclined
    | ShiftSwapCancelled
)


@dataclass(frozen=True)
class ResponseMatrixChanged:
    """A new version of the response matrix (the matrix aggregate's event)."""

    rows: tuple[MatrixRow, ...]


@dataclass(frozen=True)
class StatementPublished:
    """A public statement (status page) was published: its version (1, 2, ... per incident),
    the public headline and text (the source language, and optionally English) and who did."""

    version: int
    headline: str
    text: str
    published_by: str
    headline_en: str = ""
    text_en: str = ""


@dataclass(frozen=True)
class CustomersNotificationDecided:
    """Affected customers are to be told: who decided, the template, the statement version it
    quotes (0: none), whom, and the rendered message (customer-profile delivers it)."""

    notification_id: str
    template_id: str
    statement_version: int
    decided_by: str
    customer_ids: tuple[str, ...]
    ticket_ids: tuple[str, ...]
    segments: tuple[str, ...]
    subject: str
    body: str
    subject_en: str
    body_en: str
    templates_version: str = ""


IncidentEvent = (
    IncidentDeclared
    | TeamEngaged
    | PageRequested
    | TeamInformed
    | NotificationDelivered
    | NotificationFailed
    | PageAcknowledged
    | PageEscalated
    | EscalationExhausted
    | ResponseDeadlineMissed
    | IncidentReassessed
    | RoleAssigned
    | UpdateAdded
    | IncidentEscalated
    | IncidentResolved
    | IncidentClosed
    | TicketsLinked
    | PageContactsDue
    | StatementPublished
    | CustomersNotificationDecided
)
