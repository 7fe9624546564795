"""The ticket's events; each carries a snapshot of the SLA clocks it changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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


@dataclass(frozen=True)
class SlaSnapshot:
    clocks: tuple[SlaClockSnapshot, ...] = ()


@dataclass(frozen=True)
class TicketOpened:
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


@dataclass(frozen=True)
class TicketAssigned:
    agent_id: str
    suggested: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ReplyAdded:
    author: Author
    author_id: str
    body: str
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class PriorityChanged:
    from_priority: Priority
    to_priority: Priority
    reason: str = ""
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketEscalated:
    level: int
    to_team: str
    reason: str


@dataclass(frozen=True)
class TicketHeld:
    reason: HoldReason
    note: str = ""
    clocks_paused: bool = False
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketResumed:
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketResolved:
    resolution: str
    first_contact: bool
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketReopened:
    reason: str
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketClosed:
    note: str = ""
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class SlaWarningRaised:
    clock: SlaClock
    due_at: datetime
    target: timedelta


@dataclass(frozen=True)
class SlaBreached:
    clock: SlaClock
    due_at: datetime
    target: timedelta


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
)
