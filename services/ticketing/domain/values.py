"""The ticket context's vocabulary: channels, types, priorities, statuses, tiers, clocks."""

from __future__ import annotations

from enum import StrEnum

MAX_SUBJECT = 200
MAX_TEXT = 20_000
MAX_ID = 100


# ----------------------------------------------------------------------------- vocabulary


class Channel(StrEnum):
    """Where a ticket came in."""

    PHONE = "phone"
    EMAIL = "email"
    CHAT = "chat"
    SOCIAL = "social"
    APP = "app"
    WEB = "web"
    STORE = "store"


class TicketType(StrEnum):
    """What a ticket is about."""

    CONSULTATION = "consultation"
    FAULT = "fault"
    COMPLAINT = "complaint"
    RETURN = "return"


class Priority(StrEnum):
    """How urgent a ticket is."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Status(StrEnum):
    """Where a ticket is in its lifecycle."""

    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CustomerTier(StrEnum):
    """The customer's value tier (scales SLA targets)."""

    HIGH_VALUE = "high_value"
    POTENTIAL = "potential"
    REGULAR = "regular"
    LOW_FREQUENCY = "low_frequency"


class HoldReason(StrEnum):
    """Why a ticket is on hold."""

    WAITING_CUSTOMER = "waiting_customer"
    WAITING_THIRD_PARTY = "waiting_third_party"
    WAITING_INTERNAL = "waiting_internal"


class Author(StrEnum):
    """Who wrote a reply."""

    AGENT = "agent"
    CUSTOMER = "customer"


class SlaClock(StrEnum):
    """The two SLA clocks of a ticket."""

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class SlaTimerKind(StrEnum):
    """What an SLA timer raises."""

    WARNING = "warning"
    BREACH = "breach"


# Which hold reasons pause the clocks is the SLA policy's `pausing_hold_reasons` (by default
# only waiting for the customer: the other waits are the company's own time).
ACTIVE = frozenset({Status.OPEN, Status.ASSIGNED, Status.IN_PROGRESS, Status.ON_HOLD})
