"""The commands a ticket accepts."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class OpenTicket:
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
    agent_id: str
    suggested: bool = False
    reason: str = ""


@dataclass(frozen=True)
class AddReply:
    author: Author | None
    author_id: str
    body: str


@dataclass(frozen=True)
class ChangePriority:
    priority: Priority | None
    reason: str = ""


@dataclass(frozen=True)
class EscalateTicket:
    reason: str
    to_team: str = ""


@dataclass(frozen=True)
class HoldTicket:
    reason: HoldReason | None
    note: str = ""


@dataclass(frozen=True)
class ResumeTicket:
    pass


@dataclass(frozen=True)
class ResolveTicket:
    resolution: str = ""


@dataclass(frozen=True)
class ReopenTicket:
    reason: str = ""


@dataclass(frozen=True)
class CloseTicket:
    note: str = ""


@dataclass(frozen=True)
class FireSlaTimer:
    """Sent by the timer scheduler when a deadline recorded in the read side is due."""

    clock: SlaClock
    kind: SlaTimerKind


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
)
