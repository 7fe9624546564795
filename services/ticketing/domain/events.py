"""The ticket's events; each carries a snapshot of the SLA clocks it changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from careops_emotion import Emotion
from careops_published.sealed import SealedText

from ticketing.domain.checklist import ChecklistItemTicked
from ticketing.domain.compensation import (
    CompensationApproved,
    CompensationGranted,
    CompensationRejected,
    CompensationRequested,
)
from ticketing.domain.complaint import ComplaintFollowUpMissed, ComplaintStepRecorded
from ticketing.domain.values import (
    Author,
    Channel,
    CustomerTier,
    HoldReason,
    Priority,
    SlaClock,
    TicketType,
)


@dataclass(frozen=True)
class SlaClockSnapshot:
    """One SLA clock as of the event."""

    clock: SlaClock
    target: timedelta
    consumed: timedelta = timedelta(0)
    running: bool = False
    paused: bool = False
    warn_at: datetime | None = None
    due_at: datetime | None = None
    warned: bool = False
    breached: bool = False
    met: bool = False
    stopped_at: datetime | None = None
    # On the event ending a hold that paused the clock: the business time it stayed paused.
    paused_for: timedelta | None = None


@dataclass(frozen=True)
class SlaSnapshot:
    """The clocks an event changed."""

    clocks: tuple[SlaClockSnapshot, ...] = ()


@dataclass(frozen=True)
class TicketOpened:
    """A ticket was opened; its SLA clocks started."""

    ticket_id: str
    customer_id: str
    channel: Channel
    type: TicketType
    priority: Priority
    subject: str
    description: str
    tier: CustomerTier
    sla: SlaSnapshot | None = None
    product: str = ""
    # The customer's emotion in subject and description (careops_emotion, decided by decide).
    emotion: Emotion | None = None
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None
    # The version of the SLA policy in force at the opening: the ticket is decided under it
    # (until an SlaPolicyApplied moves it to another). Empty on tickets opened before issue 13.
    sla_policy_version: str = ""


@dataclass(frozen=True)
class TicketAssigned:
    """A ticket was assigned to an agent."""

    agent_id: str
    suggested: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ReplyAdded:
    """An agent or the customer replied."""

    author: Author
    author_id: str
    body: str
    sla: SlaSnapshot | None = None
    internal: bool = False
    channel: Channel | None = None
    macro_id: str = ""
    macro_version: int = 0
    # A customer's public message only: its emotion (careops_emotion, decided by decide).
    emotion: Emotion | None = None
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class PriorityChanged:
    """The priority changed and the clocks were retargeted."""

    from_priority: Priority
    to_priority: Priority
    reason: str = ""
    sla: SlaSnapshot | None = None
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class TicketEscalated:
    """The ticket was escalated one level."""

    level: int
    to_team: str
    reason: str
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class TicketHeld:
    """The ticket was put on hold."""

    reason: HoldReason
    note: str = ""
    clocks_paused: bool = False
    sla: SlaSnapshot | None = None
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class TicketResumed:
    """A held ticket was resumed."""

    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketResolved:
    """The ticket was resolved."""

    resolution: str
    first_contact: bool
    sla: SlaSnapshot | None = None
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class TicketReopened:
    """A resolved ticket was reopened."""

    reason: str
    sla: SlaSnapshot | None = None
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class TicketClosed:
    """The ticket was closed."""

    note: str = ""
    sla: SlaSnapshot | None = None
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class SlaWarningRaised:
    """An SLA clock passed the warning share of its target."""

    clock: SlaClock
    due_at: datetime
    target: timedelta


@dataclass(frozen=True)
class SlaBreached:
    """An SLA clock passed its target."""

    clock: SlaClock
    due_at: datetime
    target: timedelta


@dataclass(frozen=True)
class SlaPolicyApplied:
    """A newer SLA policy version was applied to the open ticket (put with apply_to_open): its
    clocks re-derived from their running segments under the new targets and calendar."""

    sla_policy_version: str
    revision: int
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketReturnedToQueue:
    """An assigned ticket the agent had not started went back to the routing queue."""

    agent_id: str
    reason: str = ""


TicketEvent = (
    TicketOpened
    | TicketAssigned
    | ReplyAdded
    | PriorityChanged
    | TicketEscalated
    | TicketHeld
    | TicketResumed
    | TicketResolved
    | TicketReopened
    | TicketClosed
    | SlaWarningRaised
    | SlaBreached
    | CompensationGranted
    | CompensationRequested
    | CompensationApproved
    | CompensationRejected
    | TicketReturnedToQueue
    | ComplaintStepRecorded
    | ComplaintFollowUpMissed
    | ChecklistItemTicked
    | SlaPolicyApplied
)

# The free text of each event: written by or about the customer, so personal data (issue 12).
# On the log it is sealed for the ticket's customer; after an erasure it reads as "".
FREE_TEXT: dict[type, tuple[str, ...]] = {
    TicketOpened: ("subject", "description"),
    ReplyAdded: ("body",),
    PriorityChanged: ("reason",),
    TicketEscalated: ("reason",),
    TicketHeld: ("note",),
    TicketResolved: ("resolution",),
    TicketReopened: ("reason",),
    TicketClosed: ("note",),
    ComplaintStepRecorded: ("note", "plan", "options", "outcome", "root_cause", "prevention"),
    ChecklistItemTicked: ("note",),
    CompensationGranted: ("reason",),
    CompensationRequested: ("reason",),
    CompensationApproved: ("reason",),
    CompensationRejected: ("reason",),
}
