"""Customer's published events (careops.customer.v1), as other contexts read them.

Personal data stays sealed: `personal` is the ciphertext only customer can open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Sealed:
    key_version: int
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Consent:
    marketing: bool
    profiling: bool


@dataclass(frozen=True)
class CustomerRegistered:
    customer_id: str
    personal: Sealed | None
    email_hash: str
    phone_hash: str
    locale: str
    consent: Consent | None


@dataclass(frozen=True)
class ProfileUpdated:
    personal: Sealed | None
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


CustomerEvent = CustomerRegistered | ProfileUpdated | SegmentAssigned | CustomerForgotten
