"""Ticketing's published events (careops.ticketing.v1), as other contexts read them.

Withheld: what customers and agents wrote (subject, description, reply bodies) and the SLA clock
snapshots, ticketing's own bookkeeping (other contexts replay the SLA from the timeline), except
on the events that begin and end a hold: pause accountability (issue 13) reads what each hold
did to each clock from them, by the calendar that decided it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WITHHELD: dict[str, tuple[str, ...]] = {
    "TicketOpened": ("subject", "description", "sla", "sealed"),
    "ReplyAdded": ("body", "sla", "macro_id", "macro_version", "sealed"),
    # Free text (issue 12): on the log only sealed for the ticket's customer.
    "PriorityChanged": ("reason", "sla", "sealed"),
    "TicketEscalated": ("reason", "sealed"),
    "TicketHeld": ("note", "sealed"),
    "TicketResolved": ("resolution", "sealed"),
    "TicketReopened": ("reason", "sla", "sealed"),
    "TicketClosed": ("note", "sla", "sealed"),
}


@dataclass(frozen=True)
class TicketOpened:
    ticket_id: str
    customer_id: str
    channel: str | None
    type: str | None
    priority: str | None
    tier: str | None
    product: str
    # The customer's emotion (DOMAIN §4): angry, anxious, neutral, satisfied; None before issue 12.
    emotion: str | None = None
    # The SLA policy version the ticket is decided under from its opening ("" before issue 13).
    sla_policy_version: str = ""


@dataclass(frozen=True)
class TicketAssigned:
    agent_id: str
    suggested: bool
    reason: str


@dataclass(frozen=True)
class ReplyAdded:
    author: str | None
    author_id: str
    # An agent's internal note: no answer to the customer (no first response, no reply).
    internal: bool = False
    channel: str | None = None
    # A customer's public message only: its emotion (None for agents and notes).
    emotion: str | None = None


@dataclass(frozen=True)
class PriorityChanged:
    from_priority: str | None
    to_priority: str | None


@dataclass(frozen=True)
class TicketEscalated:
    level: int
    to_team: str


@dataclass(frozen=True)
class SlaClockSnapshot:
    """One SLA clock as of a hold event (careops.ticketing.v1.SlaClockSnapshot)."""

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
    # On the event ending a hold: the business time this clock stayed paused by it.
    paused_for: timedelta | None = None


@dataclass(frozen=True)
class SlaSnapshot:
    clocks: tuple[SlaClockSnapshot, ...] = ()


@dataclass(frozen=True)
class TicketHeld:
    reason: str | None
    clocks_paused: bool
    # The clocks as the hold began (None when the reason pauses nothing).
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketResumed:
    # The clocks as the hold ended (None when it had paused nothing).
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketResolved:
    first_contact: bool
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketReopened:
    """Carries nothing but the (withheld) reason and SLA snapshot."""


@dataclass(frozen=True)
class TicketClosed:
    """Carries nothing but the (withheld) note and SLA snapshot."""


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


# Issue 13: a newer SLA policy version applied to an open ticket (its clocks' snapshot withheld).
WITHHELD["SlaPolicyApplied"] = ("sla",)


@dataclass(frozen=True)
class SlaPolicyApplied:
    sla_policy_version: str
    revision: int


# Compensation (issue 12 item 3). The reasons are free text about the customer: withheld.
WITHHELD.update(
    {
        "CompensationGranted": ("reason", "sealed"),
        "CompensationRequested": ("reason", "sealed"),
        "CompensationApproved": ("reason", "sealed"),
        "CompensationRejected": ("reason", "sealed"),
    }
)


# The complaint procedure (issue 12 item 2): what was said, planned and found is withheld.
WITHHELD.update(
    {
        "ComplaintStepRecorded": (
            "note", "plan", "options", "outcome", "root_cause", "prevention", "sealed"
        ),
    }
)  # fmt: skip


@dataclass(frozen=True)
class ComplaintStepRecorded:
    step: str | None
    by: str
    follow_up_at: datetime | None
    shared: bool
    late: bool


@dataclass(frozen=True)
class ComplaintFollowUpMissed:
    due_at: datetime | None


@dataclass(frozen=True)
class CompensationGranted:
    compensation_id: str
    kind: str | None
    amount: str
    currency: str
    granted_by: str
    limit: str


@dataclass(frozen=True)
class CompensationRequested:
    compensation_id: str
    kind: str | None
    amount: str
    currency: str
    requested_by: str
    limit: str


@dataclass(frozen=True)
class CompensationApproved:
    compensation_id: str
    kind: str | None
    amount: str
    currency: str
    requested_by: str
    approved_by: str


@dataclass(frozen=True)
class CompensationRejected:
    compensation_id: str
    kind: str | None
    amount: str
    currency: str
    requested_by: str
    rejected_by: str
