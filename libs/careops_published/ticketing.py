"""Ticketing's published events (careops.ticketing.v1), as other contexts read them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SlaClockSnapshot:
    clock: str | None
    target: timedelta
    consumed: timedelta
    running: bool
    paused: bool
    warn_at: datetime | None
    due_at: datetime | None
    warned: bool
    breached: bool
    met: bool
    stopped_at: datetime | None


@dataclass(frozen=True)
class SlaSnapshot:
    clocks: tuple[SlaClockSnapshot, ...]


@dataclass(frozen=True)
class TicketOpened:
    ticket_id: str
    customer_id: str
    channel: str | None
    type: str | None
    priority: str | None
    subject: str
    description: str
    tier: str | None
    sla: SlaSnapshot | None
    product: str


@dataclass(frozen=True)
class TicketAssigned:
    agent_id: str
    suggested: bool
    reason: str


@dataclass(frozen=True)
class ReplyAdded:
    author: str | None
    author_id: str
    body: str
    sla: SlaSnapshot | None


@dataclass(frozen=True)
class PriorityChanged:
    from_priority: str | None
    to_priority: str | None
    reason: str
    sla: SlaSnapshot | None


@dataclass(frozen=True)
class TicketEscalated:
    level: int
    to_team: str
    reason: str


@dataclass(frozen=True)
class TicketHeld:
    reason: str | None
    note: str
    clocks_paused: bool
    sla: SlaSnapshot | None


@dataclass(frozen=True)
class TicketResumed:
    sla: SlaSnapshot | None


@dataclass(frozen=True)
class TicketResolved:
    resolution: str
    first_contact: bool
    sla: SlaSnapshot | None


@dataclass(frozen=True)
class TicketReopened:
    reason: str
    sla: SlaSnapshot | None


@dataclass(frozen=True)
class TicketClosed:
    note: str
    sla: SlaSnapshot | None


@dataclass(frozen=True)
class SlaWarningRaised:
    clock: str | None
    due_at: datetime | None
    target: timedelta


@dataclass(frozen=True)
class SlaBreached:
    clock: str | None
    due_at: datetime | None
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
