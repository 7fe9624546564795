"""The ticket aggregate's state and `evolve`: what each event changes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from careops_emotion import Emotion
from careops_sla.clock import Clock

from ticketing.domain.checklist import ChecklistItemTicked, ItemTicked
from ticketing.domain.compensation import (
    Compensation,
    CompensationApproved,
    CompensationGranted,
    CompensationRejected,
    CompensationRequested,
    evolve_compensations,
)
from ticketing.domain.complaint import (
    Complaint,
    ComplaintFollowUpMissed,
    ComplaintStepRecorded,
    evolve_complaint,
)
from ticketing.domain.events import (
    PriorityChanged,
    ReplyAdded,
    SlaBreached,
    SlaPolicyApplied,
    SlaSnapshot,
    SlaWarningRaised,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketEvent,
    TicketHeld,
    TicketOpened,
    TicketReopened,
    TicketResolved,
    TicketResumed,
    TicketReturnedToQueue,
)
from ticketing.domain.values import (
    Author,
    Channel,
    CustomerTier,
    HoldReason,
    Priority,
    SlaClock,
    Status,
    TicketType,
)


@dataclass(frozen=True)
class Ticket:
    """The ticket aggregate's state."""

    ticket_id: str
    exists: bool = False
    customer_id: str = ""
    channel: Channel = Channel.WEB
    type: TicketType = TicketType.CONSULTATION
    priority: Priority = Priority.NORMAL
    status: Status = Status.OPEN
    subject: str = ""
    description: str = ""
    tier: CustomerTier = CustomerTier.REGULAR
    product: str = ""
    assignee_id: str = ""
    escalation_level: int = 0
    hold_reason: HoldReason | None = None
    # When the current hold began (None while not on hold).
    held_at: datetime | None = None
    reopen_count: int = 0
    agent_replies: int = 0
    customer_replies: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    clocks: dict[SlaClock, Clock] = field(default_factory=dict)
    compensations: tuple[Compensation, ...] = ()
    # Emotion steers service (DOMAIN §4): the last customer message's emotion; an angry message
    # ever (routing then requires a senior agent); anxious asks the agent for a detailed
    # explanation; satisfied invites a survey.
    emotion: Emotion | None = None
    angry_customer: bool = False
    detailed_explanation_requested: bool = False
    survey_invited: bool = False
    complaint: Complaint = field(default_factory=Complaint)
    checklist: tuple[ItemTicked, ...] = ()
    # The SLA policy version the ticket is decided under: the one in force at its opening, or
    # the last one applied to it (SlaPolicyApplied); "" before issue 13 (the one in force).
    sla_policy_version: str = ""


def initial(ticket_id: str) -> Ticket:
    """Returns the state of a ticket that does not exist yet."""
    return Ticket(ticket_id=ticket_id)


def _clocks_from(
    snapshot_: SlaSnapshot | None, state: Ticket, at: datetime
) -> dict[SlaClock, Clock]:
    """Returns the clocks after an event's snapshot (unchanged without one)."""
    if snapshot_ is None:
        return state.clocks
    clocks = dict(state.clocks)
    for item in snapshot_.clocks:
        # The running segment up to this event joins the history (due times after a retarget).
        previous = clocks.get(item.clock)
        history = previous.checkpoint(at).history if previous else ()
        clocks[item.clock] = Clock(
            name=item.clock,
            target=item.target,
            consumed=item.consumed,
            running_since=at if item.running else None,
            paused=item.paused,
            warn_at=item.warn_at,
            due_at=item.due_at,
            warned=item.warned,
            breached=item.breached,
            met=item.met,
            stopped_at=item.stopped_at,
            history=history,
        )
    return clocks


def _resting_status(state: Ticket) -> Status:
    """Returns the status a ticket returns to: in progress when assigned, else open."""
    return Status.IN_PROGRESS if state.assignee_id else Status.OPEN


def evolve(state: Ticket, event: TicketEvent, at: datetime) -> Ticket:
    """Returns the state after one event recorded at `at`."""
    # One replace per event: a Ticket has ~30 fields, and replace() is most of evolve's cost.
    return replace(state, updated_at=at, **_changes(state, event, at))


def _changes(state: Ticket, event: TicketEvent, at: datetime) -> dict[str, Any]:
    """Returns the fields one event sets (besides updated_at)."""
    match event:
        case TicketOpened():
            return dict(
                exists=True,
                customer_id=event.customer_id,
                channel=event.channel,
                type=event.type,
                priority=event.priority,
                status=Status.OPEN,
                subject=event.subject,
                description=event.description,
                tier=event.tier,
                product=event.product,
                created_at=at,
                clocks=_clocks_from(event.sla, state, at),
                sla_policy_version=event.sla_policy_version,
                **_emotion_flags(state, event.emotion),
            )
        case SlaPolicyApplied():
            return dict(
                sla_policy_version=event.sla_policy_version,
                clocks=_clocks_from(event.sla, state, at),
            )
        case TicketAssigned():
            status = Status.ASSIGNED if state.status is Status.OPEN else state.status
            return dict(assignee_id=event.agent_id, status=status)
        case TicketReturnedToQueue():
            return dict(assignee_id="", status=Status.OPEN)
        case ReplyAdded():
            return _evolve_reply(state, event, at)
        case PriorityChanged():
            return dict(priority=event.to_priority, clocks=_clocks_from(event.sla, state, at))
        case TicketEscalated():
            return dict(escalation_level=event.level)
        case TicketHeld():
            clocks = _clocks_from(event.sla, state, at)
            return dict(status=Status.ON_HOLD, hold_reason=event.reason, held_at=at, clocks=clocks)
        case TicketResumed():
            clocks = _clocks_from(event.sla, state, at)
            return dict(
                status=_resting_status(state),
                hold_reason=None,
                held_at=None,
                clocks=clocks,
            )
        case TicketResolved():
            clocks = _clocks_from(event.sla, state, at)
            return dict(
                status=Status.RESOLVED,
                hold_reason=None,
                held_at=None,
                resolved_at=at,
                clocks=clocks,
            )
        case TicketReopened():
            return dict(
                status=_resting_status(state),
                reopen_count=state.reopen_count + 1,
                resolved_at=None,
                clocks=_clocks_from(event.sla, state, at),
            )
        case TicketClosed():
            return dict(status=Status.CLOSED, closed_at=at)
        case SlaWarningRaised():
            return _flag(state, event.clock, warned=True)
        case SlaBreached():
            return _flag(state, event.clock, breached=True)
        case (
            CompensationGranted()
            | CompensationRequested()
            | CompensationApproved()
            | CompensationRejected()
        ):
            return dict(compensations=evolve_compensations(state.compensations, event, at))
        case ComplaintStepRecorded() | ComplaintFollowUpMissed():
            return dict(complaint=evolve_complaint(state.complaint, event, at))
        case ChecklistItemTicked():
            ticked = ItemTicked(event.item, event.by, at, event.note)
            return dict(checklist=(*state.checklist, ticked))
    return {}


def _evolve_reply(state: Ticket, event: ReplyAdded, at: datetime) -> dict[str, Any]:
    """Returns the fields a reply sets."""
    if event.internal:
        return {}  # a note is read by agents; it changes no count, clock or status
    clocks = _clocks_from(event.sla, state, at)
    if event.author is Author.CUSTOMER:
        return dict(
            customer_replies=state.customer_replies + 1,
            clocks=clocks,
            **_emotion_flags(state, event.emotion),
        )
    status = state.status
    if status in (Status.OPEN, Status.ASSIGNED):
        status = Status.IN_PROGRESS
    # Only the reply that stopped the first-response clock (it carries the SLA snapshot) is the
    # first response; one after an unanswered resolution is not.
    answered = state.first_responded_at or (at if event.sla is not None else None)
    return dict(
        agent_replies=state.agent_replies + 1,
        first_responded_at=answered,
        status=status,
        clocks=clocks,
    )


def _emotion_flags(state: Ticket, emotion: Emotion | None) -> dict[str, Any]:
    """Returns the ticket fields a customer message's emotion sets (flags stay once set)."""
    if emotion is None:
        return {}
    return {
        "emotion": emotion,
        "angry_customer": state.angry_customer or emotion is Emotion.ANGRY,
        "detailed_explanation_requested": state.detailed_explanation_requested
        or emotion is Emotion.ANXIOUS,
        "survey_invited": state.survey_invited or emotion is Emotion.SATISFIED,
    }


def _flag(
    state: Ticket, name: SlaClock, *, warned: bool = False, breached: bool = False
) -> dict[str, Any]:
    """Returns the clocks with one marked warned or breached."""
    clock = state.clocks[name]
    if warned:
        clock = replace(clock, warned=True, warn_at=None)
    if breached:
        clock = replace(clock, breached=True)
    return {"clocks": {**state.clocks, name: clock}}
