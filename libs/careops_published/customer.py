"""Customer's published events (careops.customer.v1), as other contexts read them.

Withheld: the sealed personal data (`personal`, a ciphertext only customer can open); other
contexts link a customer by id and by the e-mail / phone hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The tiers customers are segmented into (SegmentAssigned.tier): the segments an incident's
# NotifyCustomers may name.
TIERS = ("high_value", "potential", "regular", "low_frequency")

WITHHELD: dict[str, tuple[str, ...]] = {
    "CustomerRegistered": ("personal",),
    "ProfileUpdated": ("personal",),
    # A provider's error text may quote the address it could not reach.
    "CustomerNotified": ("error",),
}


@dataclass(frozen=True)
class Consent:
    marketing: bool
    profiling: bool


@dataclass(frozen=True)
class CustomerRegistered:
    customer_id: str
    email_hash: str
    phone_hash: str
    locale: str
    consent: Consent | None


@dataclass(frozen=True)
class ProfileUpdated:
    email_hash: str
    phone_hash: str
    locale: str
    consent: Consent | None
    changed: tuple[str, ...]


@dataclass(frozen=True)
class SegmentAssigned:
    tier: str | None
    recency_score: int
    frequency_score: int
    monetary_score: int
    churn_risk: bool
    model_version: str
    as_of: datetime | None


@dataclass(frozen=True)
class CustomerForgotten:
    reason: str | None


@dataclass(frozen=True)
class CustomerNotified:
    """The customer was told about an incident through `channel` (delivered, or it failed)."""

    incident_id: str
    notification_id: str
    template_id: str
    statement_version: int
    channel: str
    language: str
    delivered: bool
