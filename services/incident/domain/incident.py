"""The incident aggregate's state and `evolve`: what each event changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from incident.domain.escalation import PlannedContact
from incident.domain.events import (
    CustomersNotificationDecided,
    EscalationExhausted,
    IncidentClosed,
    IncidentDeclared,
    IncidentEscalated,
    IncidentEvent,
    IncidentReassessed,
    IncidentResolved,
    NotificationDelivered,
    NotificationFailed,
    PageAcknowledged,
    PageContactsDue,
    PageEscalated,
    PageRequested,
    PostIncidentReview,
    ResponseDeadlineMissed,
    RoleAssigned,
    StatementPublished,
    TeamEngaged,
    TeamInformed,
    TicketsLinked,
    UpdateAdded,
)
from incident.domain.matrix import MatrixCell
from incident.domain.oncall import ContactPoint
from incident.domain.risk import RiskFactors
from incident.domain.values import ContactKind, Engagement, Level, Source, Status


class TeamEngagement(NamedTuple):
    """How a team is engaged in an incident, and whether it was paged (else informed)."""

    engagement: Engagement
    paged: bool


class Notice(NamedTuple):
    """A team informed of an incident (grey, or yellow at level C) and whom it was sent to."""

    team_id: str
    contacts: tuple[ContactPoint, ...]


class Delivery(NamedTuple):
    """The outcome of sending a page or notice over one contact kind."""

    delivered: bool
    attempts: int
    error: str


class TimelineEntry(NamedTuple):
    """One line of an incident's timeline."""

    at: datetime
    kind: str
    text: str


class PublicStatement(NamedTuple):
    """One published version of the incident's public statement."""

    version: int
    at: datetime
    headline: str
    text: str
    published_by: str
    headline_en: str
    text_en: str


@dataclass(frozen=True)
class PageState:
    """One page: whom it went to, its step in the chain, and its deliveries."""

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
    deliveries: Mapping[ContactKind, Delivery] = field(default_factory=dict)
    policy_id: str = ""
    plan: tuple[PlannedContact, ...] = ()
    contacts_due: frozenset[int] = frozenset()  # the plan's later delays already issued


@dataclass(frozen=True)
class Incident:
    """The incident aggregate's state."""

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
    teams: Mapping[str, TeamEngagement] = field(default_factory=dict)
    pages: Mapping[str, PageState] = field(default_factory=dict)
    notices: Mapping[str, Notice] = field(default_factory=dict)
    exhausted: frozenset[str] = frozenset()
    roles: Mapping[str, str] = field(default_factory=dict)
    timeline: tuple[TimelineEntry, ...] = ()
    ticket_ids: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()
    review: PostIncidentReview | None = None
    public_statement_draft: str = ""
    surge_key: str = ""
    statements: tuple[PublicStatement, ...] = ()
    customer_notifications: tuple[str, ...] = ()
    extra_teams: tuple[MatrixCell, ...] = ()

    def team_acknowledged(self, team_id: str) -> bool:
        """True when any page of the team was acknowledged."""
        return any(p.acknowledged_at for p in self.pages.values() if p.team_id == team_id)

    def deliveries_of(self, notice_id: str) -> Mapping[ContactKind, Delivery]:
        """Returns the delivery outcomes of a page or notice by contact kind."""
        page = self.pages.get(notice_id)
        return page.deliveries if page else self.delivered_notices.get(notice_id, {})

    delivered_notices: Mapping[str, Mapping[ContactKind, Delivery]] = field(default_factory=dict)


def initial(incident_id: str) -> Incident:
    """Returns the state of an incident that does not exist yet."""
    return Incident(incident_id=incident_id)


# The declaration's fields the state keeps as they are.
_DECLARED = (
    "type",
    "title",
    "description",
    "source",
    "factors",
    "risk_index",
    "level",
    "drill",
    "response_due_at",
    "matrix_version",
    "ticket_ids",
    "customer_ids",
    "surge_key",
    "extra_teams",
)


def _note(state: Incident, at: datetime, kind: str, text: str) -> tuple[TimelineEntry, ...]:
    """Returns the timeline with one more entry."""
    return (*state.timeline, TimelineEntry(at, kind, text))


def evolve(state: Incident, event: IncidentEvent, at: datetime) -> Incident:
    """Returns the incident after one event recorded at `at`."""
    match event:
        case IncidentDeclared():
            copied = {name: getattr(event, name) for name in _DECLARED}
            return replace(
                state,
                exists=True,
                status=Status.DECLARED,
                declared_at=at,
                timeline=_note(state, at, "declared", f"level {event.level.value.upper()}"),
                **copied,
            )
        case TeamEngaged():
            teams = {**state.teams, event.team_id: TeamEngagement(event.engagement, event.paged)}
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
                policy_id=event.policy_id,
                plan=event.plan,
            )
            text = f"paged {event.member_id} ({event.team_id})"
            pages = {**state.pages, event.page_id: page}
            return replace(state, pages=pages, timeline=_note(state, at, "page", text))
        case TeamInformed():
            notices = {**state.notices, event.notice_id: Notice(event.team_id, event.contacts)}
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
        case PageContactsDue():
            page = state.pages[event.page_id]
            page = replace(
                page,
                contacts=(*page.contacts, *event.contacts),
                contacts_due=page.contacts_due | {event.delay_seconds},
            )
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
        case StatementPublished():
            statement = PublicStatement(
                event.version,
                at,
                event.headline,
                event.text,
                event.published_by,
                event.headline_en,
                event.text_en,
            )
            text = f"public statement v{event.version} published by {event.published_by}"
            return replace(
                state,
                statements=(*state.statements, statement),
                timeline=_note(state, at, "statement", text),
            )
        case CustomersNotificationDecided():
            text = (
                f"customers to be notified by {event.decided_by} (template {event.template_id}, "
                f"statement v{event.statement_version})"
            )
            return replace(
                state,
                customer_notifications=(*state.customer_notifications, event.notification_id),
                timeline=_note(state, at, "customers_notified", text),
            )
        case TicketsLinked():
            return replace(
                state,
                ticket_ids=(*state.ticket_ids, *event.ticket_ids),
                customer_ids=(*state.customer_ids, *event.customer_ids),
            )
    return state


def _level_change(before: Level, after: Level, reason: str) -> str:
    """Returns the timeline text of a level change."""
    return f"{before.value.upper()} -> {after.value.upper()}: {reason}"


def _record(state: Incident, event: NotificationDelivered | NotificationFailed) -> Incident:
    """Returns the state with a delivery outcome on its page or notice."""
    outcome = (
        Delivery(True, event.attempts, "")
        if isinstance(event, NotificationDelivered)
        else Delivery(False, event.attempts, event.error)
    )
    page = state.pages.get(event.notice_id)
    if page is not None:
        updated = replace(page, deliveries={**page.deliveries, event.kind: outcome})
        return replace(state, pages={**state.pages, event.notice_id: updated})
    current = state.delivered_notices.get(event.notice_id, {})
    notices = {**state.delivered_notices, event.notice_id: {**current, event.kind: outcome}}
    return replace(state, delivered_notices=notices)
