"""The commands an incident accepts."""

from __future__ import annotations

from dataclasses import dataclass

from incident.domain.events import PostIncidentReview
from incident.domain.matrix import MatrixCell
from incident.domain.notices import CustomerTemplate
from incident.domain.risk import RiskFactors
from incident.domain.values import ContactKind, Level, Source


@dataclass(frozen=True)
class DeclareIncident:
    """Declare an incident of a matrix type, assessed from its risk factors."""

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
    # Teams engaged besides the matrix row's (each must exist), and a level floor: both
    # recorded in IncidentDeclared, so replay and what-if decide the same.
    extra_teams: tuple[MatrixCell, ...] = ()
    level_floor: Level | None = None


@dataclass(frozen=True)
class ReassessIncident:
    """Assess an open incident again from new risk factors."""

    factors: RiskFactors | None
    reason: str


@dataclass(frozen=True)
class AssignRole:
    """Give a member a role in the incident."""

    role: str
    member_id: str


@dataclass(frozen=True)
class AddUpdate:
    """Add a progress update to the timeline."""

    message: str
    status_note: str = ""
    public_statement_draft: str = ""


@dataclass(frozen=True)
class AcknowledgePage:
    """Acknowledge a page on behalf of a member."""

    page_id: str
    member_id: str


@dataclass(frozen=True)
class EscalateIncident:
    """Raise the incident one level."""

    reason: str


@dataclass(frozen=True)
class ResolveIncident:
    """Mark the incident resolved."""

    summary: str = ""


@dataclass(frozen=True)
class CloseIncident:
    """Close a resolved incident with its post-incident review."""

    review: PostIncidentReview | None


@dataclass(frozen=True)
class LinkTickets:
    """Link customer tickets to the incident."""

    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublishStatement:
    """Publish the next version of the incident's public statement (the status page shows it)."""

    headline: str
    text: str
    published_by: str
    headline_en: str = ""
    text_en: str = ""


@dataclass(frozen=True)
class NotifyCustomers:
    """Tell the incident's affected customers (its linked customers and tickets' customers,
    and any `segments`) with a template; `template` is the one `template_id` names, None when
    no template has that id."""

    template_id: str
    template: CustomerTemplate | None
    decided_by: str
    segments: tuple[str, ...] = ()
    templates_version: str = ""


@dataclass(frozen=True)
class RecordDelivery:
    """Record the outcome of sending a page or notice over one contact kind."""

    notice_id: str
    kind: ContactKind
    attempts: int
    error: str = ""


@dataclass(frozen=True)
class DeliveryOutcome:
    """The outcome of sending a page or notice over one contact kind."""

    kind: ContactKind
    attempts: int
    error: str = ""


@dataclass(frozen=True)
class RecordDeliveries:
    """Record the outcomes of sending a page or notice over several contact kinds at once:
    one append for all of a notice's channels (the events are RecordDelivery's, one each)."""

    notice_id: str
    outcomes: tuple[DeliveryOutcome, ...]


@dataclass(frozen=True)
class RecordDeliveryBatch:
    """Record the outcomes of several pages or notices of one incident at once: one append
    for all the notices one event batch requested (each notice as its RecordDeliveries)."""

    notices: tuple[RecordDeliveries, ...]


@dataclass(frozen=True)
class FirePageTimer:
    """A page's acknowledgement timer fired (escalates when still unacknowledged)."""

    page_id: str


@dataclass(frozen=True)
class FireContactTimer:
    """A page's delayed contacts are due (sent when the page is still unacknowledged)."""

    page_id: str
    delay_seconds: int


@dataclass(frozen=True)
class FireResponseTimer:
    """The response-deadline timer fired."""


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
    | PublishStatement
    | NotifyCustomers
    | RecordDelivery
    | RecordDeliveries
    | RecordDeliveryBatch
    | FirePageTimer
    | FireResponseTimer
    | FireContactTimer
)
