"""The commands an incident accepts."""

from __future__ import annotations

from dataclasses import dataclass

from incident.domain.events import PostIncidentReview
from incident.domain.risk import RiskFactors
from incident.domain.values import ContactKind, Source


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
