"""The commands a ticket accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ticketing.domain.checklist import TickChecklistItem
from ticketing.domain.compensation import (
    ApproveCompensation,
    GrantCompensation,
    RejectCompensation,
)
from ticketing.domain.complaint import FireFollowUpTimer, RecordComplaintStep
from ticketing.domain.values import (
    Author,
    Channel,
    CustomerTier,
    HoldReason,
    Priority,
    SlaClock,
    SlaTimerKind,
    TicketType,
)

if TYPE_CHECKING:
    from ticketing.domain.decide import Policy


@dataclass(frozen=True)
class OpenTicket:
    """Open a ticket for a customer on a channel."""

    ticket_id: str
    customer_id: str
    channel: Channel | None
    type: TicketType | None
    priority: Priority | None
    subject: str
    description: str = ""
    tier: CustomerTier | None = None
    product: str = ""


@dataclass(frozen=True)
class AssignTicket:
    """Assign the ticket to an agent."""

    agent_id: str
    suggested: bool = False
    reason: str = ""
    # The router's: nothing unless the ticket is still open and unassigned (decided on the
    # state appended to, so a concurrent manual assignment is never overwritten).
    from_queue: bool = False


@dataclass(frozen=True)
class AddReply:
    """Add a reply from an agent or the customer."""

    author: Author | None
    author_id: str
    body: str
    # An internal note: agents only; never stops the first-response clock.
    internal: bool = False
    channel: Channel | None = None
    # Set when `body` was rendered from a macro (application.render_macro).
    macro_id: str = ""
    macro_version: int = 0


@dataclass(frozen=True)
class ChangePriority:
    """Change the priority (retargets the SLA clocks)."""

    priority: Priority | None
    reason: str = ""


@dataclass(frozen=True)
class EscalateTicket:
    """Escalate the ticket one level."""

    reason: str
    to_team: str = ""


@dataclass(frozen=True)
class HoldTicket:
    """Put the ticket on hold (waiting for the customer pauses the clocks)."""

    reason: HoldReason | None
    note: str = ""


@dataclass(frozen=True)
class ResumeTicket:
    """Resume a held ticket."""


@dataclass(frozen=True)
class ResolveTicket:
    """Resolve the ticket."""

    resolution: str = ""


@dataclass(frozen=True)
class ReopenTicket:
    """Reopen a resolved ticket."""

    reason: str = ""


@dataclass(frozen=True)
class CloseTicket:
    """Close the ticket."""

    note: str = ""


@dataclass(frozen=True)
class FireSlaTimer:
    """Sent by the timer scheduler when a deadline recorded in the read side is due."""

    clock: SlaClock
    kind: SlaTimerKind


@dataclass(frozen=True)
class ApplySlaPolicy:
    """Apply revision `revision` of the SLA policy (`policy`, a newer version than the
    ticket's) to an open ticket: its clocks are re-derived under the new targets and calendar.
    Nothing on a ticket no longer active or already under that version."""

    revision: int
    policy: Policy


@dataclass(frozen=True)
class ReturnToQueue:
    """Hand an unstarted ticket (no agent reply yet) of `agent_id` back to the routing queue."""

    agent_id: str
    reason: str = ""


Command = (
    OpenTicket
    | AssignTicket
    | AddReply
    | ChangePriority
    | EscalateTicket
    | HoldTicket
    | ResumeTicket
    | ResolveTicket
    | ReopenTicket
    | CloseTicket
    | FireSlaTimer
    | GrantCompensation
    | ApproveCompensation
    | RejectCompensation
    | ReturnToQueue
    | RecordComplaintStep
    | FireFollowUpTimer
    | TickChecklistItem
    | ApplySlaPolicy
)
