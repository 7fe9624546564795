"""Incident's published events (careops.incident.v1), as other contexts read them.

Withheld: the title and description, free text staff wrote, which may name people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WITHHELD: dict[str, tuple[str, ...]] = {"IncidentDeclared": ("title", "description")}


@dataclass(frozen=True)
class RiskFactors:
    users_affected: int
    core_system: float
    elapsed_minutes: float
    average_handling_minutes: float
    exposure: float


@dataclass(frozen=True)
class MatrixCell:
    team_id: str
    engagement: str | None


@dataclass(frozen=True)
class IncidentDeclared:
    incident_id: str
    type: str
    source: str | None
    factors: RiskFactors | None
    risk_index: float
    level: str | None
    drill: bool
    response_due_at: datetime | None
    matrix_version: int
    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]
    surge_key: str
    extra_teams: tuple[MatrixCell, ...]
    level_floor: str | None


@dataclass(frozen=True)
class IncidentReassessed:
    factors: RiskFactors | None
    risk_index: float
    from_level: str | None
    to_level: str | None
    reason: str
    response_due_at: datetime | None


@dataclass(frozen=True)
class IncidentEscalated:
    from_level: str | None
    to_level: str | None
    reason: str
    response_due_at: datetime | None


@dataclass(frozen=True)
class PageAcknowledged:
    page_id: str
    member_id: str


@dataclass(frozen=True)
class IncidentResolved:
    summary: str


@dataclass(frozen=True)
class TicketsLinked:
    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]


@dataclass(frozen=True)
class CustomersNotificationDecided:
    """Affected customers are to be told (customer-profile delivers): whom, and the message."""

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
    templates_version: str
