"""Customer aggregate and RFM segmentation. Pure: no I/O, no clock, no protobuf, no crypto.

Personal fields reach the domain already sealed (encrypted by the application with the
customer's data key): the aggregate decides on facts it can see in clear (existence, erasure,
tags, orders, segment) and carries the sealed record and contact hashes through.

decide(state, command, now=...) -> events;  evolve(state, event, at) -> state.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from customer import currencies

MAX_NAME = 200
MAX_ADDRESS = 500
MAX_NOTES = 5_000
MAX_TAGS = 50
TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")
FUTURE_TOLERANCE = timedelta(minutes=5)


class Tier(StrEnum):
    HIGH_VALUE = "high_value"
    POTENTIAL = "potential"
    REGULAR = "regular"
    LOW_FREQUENCY = "low_frequency"


class ErasureReason(StrEnum):
    CUSTOMER_REQUEST = "customer_request"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    RETENTION_EXPIRED = "retention_expired"
    LEGAL_ORDER = "legal_order"


# ----------------------------------------------------------------------------- errors


class CustomerError(Exception):
    """Base of the customer domain's errors."""


class InvalidCommand(CustomerError):
    """The command's fields are invalid; `violations` lists (field, description)."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in violations))
        self.violations = tuple(violations)


class IllegalTransition(CustomerError):
    """Not allowed in the customer's current state (e.g. erased)."""


class CustomerNotFound(CustomerError):
    pass


class CustomerAlreadyExists(CustomerError):
    """The id, a contact or an order id is already taken."""


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Sealed:
    """Encrypted personal data (opaque to the domain)."""

    key_version: int
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Consent:
    marketing: bool = False
    profiling: bool = False


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
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class CustomerTagged:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class PurchaseRecorded:
    order_id: str
    amount_minor: int
    currency: str
    purchased_at: datetime


@dataclass(frozen=True)
class SegmentAssigned:
    tier: Tier
    recency_score: int
    frequency_score: int
    monetary_score: int
    churn_risk: bool
    model_version: str
    as_of: datetime


@dataclass(frozen=True)
class CustomerForgotten:
    reason: ErasureReason


@dataclass(frozen=True)
class CustomerNotified:
    """The customer was told about an incident through `channel` (or it failed: `error`)."""

    incident_id: str
    notification_id: str
    template_id: str
    statement_version: int
    channel: str
    language: str
    delivered: bool
    error: str = ""


CustomerEvent = (
    CustomerRegistered
    | ProfileUpdated
    | CustomerTagged
    | PurchaseRecorded
    | SegmentAssigned
    | CustomerForgotten
    | CustomerNotified
)

# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class RegisterCustomer:
    customer_id: str
    personal: Sealed
    email_hash: str
    phone_hash: str
    locale: str
    consent: Consent


@dataclass(frozen=True)
class UpdateProfile:
    personal: Sealed
    email_hash: str
    phone_hash: str
    locale: str
    consent: Consent
    changed: tuple[str, ...]


@dataclass(frozen=True)
class TagCustomer:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordPurchase:
    order_id: str
    amount: str
    currency: str
    purchased_at: datetime | None = None


@dataclass(frozen=True)
class AssignSegment:
    segment: Segment
    model_version: str


@dataclass(frozen=True)
class ForgetCustomer:
    reason: ErasureReason | None


@dataclass(frozen=True)
class RecordNotification:
    """Record that the customer was told (or could not be told) about an incident."""

    incident_id: str
    notification_id: str
    template_id: str
    statement_version: int
    channel: str
    language: str
    error: str = ""


Command = (
    RegisterCustomer
    | UpdateProfile
    | TagCustomer
    | RecordPurchase
    | AssignSegment
    | ForgetCustomer
    | RecordNotification
)

# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Segment:
    """A new customer starts where segmentation puts a customer without purchases."""

    tier: Tier = Tier.REGULAR
    recency: int = 1
    frequency: int = 1
    monetary: int = 1
    churn_risk: bool = False


@dataclass(frozen=True)
class Customer:
    customer_id: str
    exists: bool = False
    forgotten: bool = False
    personal: Sealed | None = None
    email_hash: str = ""
    phone_hash: str = ""
    locale: str = ""
    consent: Consent = Consent()
    tags: frozenset[str] = frozenset()
    orders: dict[str, tuple[int, str]] = field(default_factory=dict)
    purchase_count: int = 0
    last_purchase_at: datetime | None = None
    segment: Segment = Segment()
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    forgotten_at: datetime | None = None
    # The incident notifications (notification ids) recorded for this customer.
    notifications: frozenset[str] = frozenset()


def initial(customer_id: str) -> Customer:
    """Returns the state of a customer that does not exist yet."""
    return Customer(customer_id=customer_id)


# ----------------------------------------------------------------------------- validation


def validate_personal(
    *, name: str, address: str, notes: str, locale: str, has_contact: bool
) -> list[tuple[str, str]]:
    """Returns violations of the plaintext personal fields (contacts are checked by the caller,
    which normalises and hashes them)."""
    violations = []
    if not name.strip():
        violations.append(("profile.name", "must not be empty"))
    elif len(name) > MAX_NAME:
        violations.append(("profile.name", f"must be at most {MAX_NAME} characters"))
    if len(address) > MAX_ADDRESS:
        violations.append(("profile.address", f"must be at most {MAX_ADDRESS} characters"))
    if len(notes) > MAX_NOTES:
        violations.append(("profile.notes", f"must be at most {MAX_NOTES} characters"))
    if locale and not LOCALE.fullmatch(locale):
        violations.append(("profile.locale", "must be a BCP 47 tag such as zh-CN or en-GB"))
    if not has_contact:
        violations.append(("profile.email", "an e-mail address or a phone number is required"))
    return violations


def _require(violations: list[tuple[str, str]]) -> None:
    if violations:
        raise InvalidCommand(violations)


# ----------------------------------------------------------------------------- decide


def decide(state: Customer, command: Command, *, now: datetime) -> list[CustomerEvent]:
    """Returns the events a command produces; raises a CustomerError when it is not allowed."""
    if isinstance(command, RegisterCustomer):
        if state.exists:
            raise CustomerAlreadyExists(f"customer {state.customer_id} already exists")
        return [
            CustomerRegistered(
                customer_id=state.customer_id,
                personal=command.personal,
                email_hash=command.email_hash,
                phone_hash=command.phone_hash,
                locale=command.locale,
                consent=command.consent,
            )
        ]
    if not state.exists:
        raise CustomerNotFound(f"customer {state.customer_id} does not exist")
    if isinstance(command, AssignSegment):
        return _assign_segment(state, command, now)
    if state.forgotten:
        raise IllegalTransition(f"customer {state.customer_id} was erased")
    match command:
        case UpdateProfile():
            return [
                ProfileUpdated(
                    personal=command.personal,
                    email_hash=command.email_hash,
                    phone_hash=command.phone_hash,
                    locale=command.locale,
                    consent=command.consent,
                    changed=command.changed,
                )
            ]
        case TagCustomer():
            return _tag(state, command)
        case RecordPurchase():
            return _purchase(state, command, now)
        case ForgetCustomer():
            if command.reason is None:
                raise InvalidCommand(
                    [("reason", "must be specified (not ERASURE_REASON_UNSPECIFIED)")]
                )
            return [CustomerForgotten(command.reason)]
        case RecordNotification():
            if command.notification_id in state.notifications:
                return []
            return [
                CustomerNotified(
                    incident_id=command.incident_id,
                    notification_id=command.notification_id,
                    template_id=command.template_id,
                    statement_version=command.statement_version,
                    channel=command.channel,
                    language=command.language,
                    delivered=not command.error,
                    error=command.error,
                )
            ]
    raise TypeError(f"unknown command {type(command).__name__}")


def normalize_tags(
    values: Sequence[str], name: str
) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """Returns the lower-cased tags and the violations of the malformed ones."""
    tags, violations = [], []
    for index, value in enumerate(values):
        tag = value.strip().lower()
        if not TAG.match(tag):
            violations.append(
                (f"{name}[{index}]", "a tag is 1-40 lower-case letters, digits, '-' or '_'")
            )
        else:
            tags.append(tag)
    return tuple(dict.fromkeys(tags)), violations


def _tag(state: Customer, command: TagCustomer) -> list[CustomerEvent]:
    add, violations = normalize_tags(command.add, "add")
    remove, more = normalize_tags(command.remove, "remove")
    violations += more
    if not add and not remove and not violations:
        violations.append(("add", "name at least one tag to add or remove"))
    if set(add) & set(remove):
        violations.append(("remove", "a tag cannot be added and removed at once"))
    _require(violations)
    added = tuple(tag for tag in add if tag not in state.tags)
    removed = tuple(tag for tag in remove if tag in state.tags)
    if len(state.tags) + len(added) - len(removed) > MAX_TAGS:
        raise InvalidCommand([("add", f"a customer has at most {MAX_TAGS} tags")])
    if not added and not removed:
        return []
    return [CustomerTagged(added, removed)]


def _purchase(state: Customer, command: RecordPurchase, now: datetime) -> list[CustomerEvent]:
    violations: list[tuple[str, str]] = []
    if not ORDER_ID.fullmatch(command.order_id):
        violations.append(
            ("order_id", "1-64 letters, digits and . _ : / - (starting with a letter or digit)")
        )
    amount_minor, currency = 0, ""
    try:
        currency = currencies.currency_code(command.currency)
        amount_minor = currencies.to_minor(command.amount, currency)
    except currencies.InvalidAmount as exc:
        violations.append((exc.field, exc.reason))
    purchased_at = command.purchased_at or now
    if purchased_at > now + FUTURE_TOLERANCE:
        violations.append(("purchased_at", "must not be in the future"))
    _require(violations)
    known = state.orders.get(command.order_id)
    if known is not None:
        if known == (amount_minor, currency):
            return []
        raise CustomerAlreadyExists(
            f"order {command.order_id} was already recorded with another amount"
        )
    return [PurchaseRecorded(command.order_id, amount_minor, currency, purchased_at)]


def _assign_segment(state: Customer, command: AssignSegment, now: datetime) -> list[CustomerEvent]:
    if state.forgotten or command.segment == state.segment:
        return []
    segment = command.segment
    return [
        SegmentAssigned(
            tier=segment.tier,
            recency_score=segment.recency,
            frequency_score=segment.frequency,
            monetary_score=segment.monetary,
            churn_risk=segment.churn_risk,
            model_version=command.model_version,
            as_of=now,
        )
    ]


# ----------------------------------------------------------------------------- evolve


def evolve(state: Customer, event: CustomerEvent, at: datetime) -> Customer:
    """Returns the state after one event."""
    match event:
        case CustomerRegistered():
            return replace(
                state,
                exists=True,
                personal=event.personal,
                email_hash=event.email_hash,
                phone_hash=event.phone_hash,
                locale=event.locale,
                consent=event.consent or Consent(),
                registered_at=at,
                updated_at=at,
            )
        case ProfileUpdated():
            return replace(
                state,
                personal=event.personal,
                email_hash=event.email_hash,
                phone_hash=event.phone_hash,
                locale=event.locale,
                consent=event.consent or Consent(),
                updated_at=at,
            )
        case CustomerTagged():
            tags = (state.tags | set(event.added)) - set(event.removed)
            return replace(state, tags=frozenset(tags), updated_at=at)
        case PurchaseRecorded():
            last = state.last_purchase_at
            return replace(
                state,
                orders={**state.orders, event.order_id: (event.amount_minor, event.currency)},
                purchase_count=state.purchase_count + 1,
                last_purchase_at=max(last, event.purchased_at) if last else event.purchased_at,
                updated_at=at,
            )
        case SegmentAssigned():
            segment = Segment(
                event.tier,
                event.recency_score,
                event.frequency_score,
                event.monetary_score,
                event.churn_risk,
            )
            return replace(state, segment=segment, updated_at=at)
        case CustomerNotified():
            return replace(state, notifications=state.notifications | {event.notification_id})
        case CustomerForgotten():
            return replace(
                state,
                forgotten=True,
                personal=None,
                email_hash="",
                phone_hash="",
                locale="",
                tags=frozenset(),
                forgotten_at=at,
                updated_at=at,
            )
    return state


# ----------------------------------------------------------------------------- segmentation


@dataclass(frozen=True)
class RfmModel:
    """Recency = the last purchase; frequency = purchases in `frequency_window`; monetary = the
    amounts in `currency` of the purchases in `monetary_window` (other currencies: frequency only).

    Each score is the quintile (1..5) of the customer's mid-rank among customers with at least
    one purchase in the frequency window: ties share a rank, so equal customers score equally.
    """

    version: str = "rfm-2026.1"
    frequency_window: timedelta = timedelta(days=365)
    monetary_window: timedelta = timedelta(days=365)
    churn_after: timedelta = timedelta(weeks=16)
    currency: str = "CNY"


@dataclass(frozen=True)
class Activity:
    """What segmentation knows about one customer (from the read models)."""

    customer_id: str
    registered_at: datetime
    last_purchase_at: datetime | None = None
    last_contact_at: datetime | None = None
    frequency: int = 0
    monetary: int = 0


@dataclass(frozen=True)
class Population:
    """Sorted values of the customers with purchases in the frequency window (the basis)."""

    last_purchases: tuple[float, ...] = ()
    frequencies: tuple[int, ...] = ()
    monetary: tuple[int, ...] = ()

    @classmethod
    def of(cls, activities: Sequence[Activity]) -> Population:
        buyers = [a for a in activities if a.frequency > 0 and a.last_purchase_at is not None]
        return cls(
            tuple(sorted(a.last_purchase_at.timestamp() for a in buyers if a.last_purchase_at)),
            tuple(sorted(a.frequency for a in buyers)),
            tuple(sorted(a.monetary for a in buyers)),
        )

    def __len__(self) -> int:
        return len(self.frequencies)


def quintile(population: Sequence[float], value: float) -> int:
    """Returns 1..5: the quintile of `value`'s mid-rank in the sorted population."""
    if not population:
        return 3
    less = bisect_left(population, value)
    equal = bisect_right(population, value) - less
    rank = (less + equal / 2) / len(population)
    return min(5, max(1, math.ceil(rank * 5)))


def segment(activity: Activity, population: Population, model: RfmModel, now: datetime) -> Segment:
    """Returns the RFM scores, tier and churn flag of one customer (DOMAIN §2)."""
    seen = [activity.registered_at, activity.last_purchase_at, activity.last_contact_at]
    last_seen = max(moment for moment in seen if moment is not None)
    churn = now - last_seen >= model.churn_after
    if activity.frequency == 0 or activity.last_purchase_at is None:
        recency = frequency = monetary = 1
    else:
        recency = quintile(population.last_purchases, activity.last_purchase_at.timestamp())
        frequency = quintile(population.frequencies, activity.frequency)
        monetary = quintile(population.monetary, activity.monetary)
    tier = tier_of(recency, frequency, monetary, churn, bought=activity.frequency > 0)
    return Segment(tier, recency, frequency, monetary, churn)


def tier_of(recency: int, frequency: int, monetary: int, churn: bool, *, bought: bool) -> Tier:
    """high-value: frequent and big spenders; potential: recent and growing; low-frequency:
    no contact or purchase for the churn period, or the least recent, least frequent buyers;
    regular: everyone else (including new customers without purchases)."""
    if churn:
        return Tier.LOW_FREQUENCY
    if not bought:
        return Tier.REGULAR
    if frequency >= 4 and monetary >= 4:
        return Tier.HIGH_VALUE
    if recency <= 1 and frequency <= 2:
        return Tier.LOW_FREQUENCY
    if recency >= 3 and (frequency >= 3 or monetary >= 3):
        return Tier.POTENTIAL
    return Tier.REGULAR
