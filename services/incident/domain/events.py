"""The events of the incident, team and response-matrix aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from incident.domain.matrix import MatrixRow
from incident.domain.oncall import ContactPoint, Team
from incident.domain.risk import RiskFactors
from incident.domain.values import ContactKind, Engagement, Level, Source


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
)
