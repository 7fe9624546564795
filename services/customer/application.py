"""Customer command handlers: validate plaintext, seal it with the customer's key, append.

Erasure order: the data key is destroyed (durably) first, then CustomerForgotten is appended.
A crash in between leaves the data already unreadable; `reconcile_erasures` (run at start)
appends the missing CustomerForgotten from the key store's tombstones, so the log always catches
up with the key store, never the reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, get_args

from careops.customer.v1 import events_pb2
from careops.customer.v1.types_pb2 import PersonalData
from careops_eventstore import EventStore
from careops_eventstore.aggregates import CommandResult
from careops_eventstore.application import ContextApplication, aggregate_kind, codec_of
from careops_eventstore.application import utc_now as utc_now  # re-exported for main.py and tests
from careops_platform import registry
from careops_platform.collectors import preinitialise
from careops_platform.contacts import (
    InvalidContact,
    contact_digest,
    contact_hash,
    normalize_email,
    normalize_phone,
)
from careops_platform.errors import AlreadyExists, FieldViolation, InvalidArgument
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from customer import domain as d
from customer.currencies import MINOR_UNITS
from customer.keystore import DecryptionFailed, KeyDestroyed, KeyStore, seal, unseal

log = logging.getLogger(__name__)

STREAM = registry.CUSTOMER.spec()
SUBJECT_PREFIX = registry.CUSTOMER.prefix("customer")
RFM_MODEL_KEY = "rfm_model"

CODEC = codec_of(get_args(d.CustomerEvent), events_pb2)

CUSTOMER = aggregate_kind(
    STREAM, SUBJECT_PREFIX, "customer", initial=d.initial, evolve=d.evolve, codec=CODEC
)

REGISTERED = Counter("careops_customers_registered_total", "Customers registered.")
PURCHASES = Counter(
    "careops_customer_purchases_total", "Purchases recorded, by currency.", ["currency"]
)
ERASURES = Counter(
    "careops_customer_erasures_total", "Customers erased (key destroyed), by reason.", ["reason"]
)
EXPORTS = Counter(
    "careops_customer_export_requests_total", "Data-subject access (export) requests served."
)
SEGMENT_CHANGES = Counter(
    "careops_customer_segment_changes_total", "Segment changes appended, by new tier.", ["tier"]
)
# Every series exists at 0 from the start, so an alert's increase() counts the first burst.
preinitialise(PURCHASES, MINOR_UNITS)
preinitialise(ERASURES, d.ErasureReason)
preinitialise(SEGMENT_CHANGES, d.Tier)


@dataclass(frozen=True)
class PersonalInput:
    """Plaintext personal fields of a request (never logged, never appended unsealed)."""

    name: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""
    notes: str = ""
    locale: str = ""


@dataclass(frozen=True)
class Contacts:
    email: str
    phone: str
    email_hash: str
    phone_hash: str


@dataclass(frozen=True)
class Registration:
    """The personal fields of a registration, validated: the record to seal, the contacts'
    hashes and the locale."""

    plaintext: PersonalData
    contacts: Contacts
    locale: str


class CustomerApp(ContextApplication[d.Customer]):
    """The customer use cases over an event store and the key store."""

    def __init__(
        self,
        *,
        store: EventStore,
        keys: KeyStore,
        hash_key: bytes,
        model: d.RfmModel | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(store=store, stream=STREAM, kind=CUSTOMER, clock=clock)
        self.keys = keys
        self._hash_key = hash_key
        self.model = model or d.RfmModel()

    # ------------------------------------------------------------------------- contacts

    def hash_contact(self, kind: str, value: str) -> str:
        """Returns the keyed hash of an e-mail or phone; raises InvalidCommand when malformed."""
        try:
            return contact_digest(self._hash_key, kind, value)
        except InvalidContact as exc:
            raise d.InvalidCommand([(kind, str(exc))]) from None

    def _contacts(self, email: str, phone: str, prefix: str) -> tuple[Contacts, list[Any]]:
        violations: list[tuple[str, str]] = []
        normalized = {"email": "", "phone": ""}
        for kind, value, normalize in (
            ("email", email, normalize_email),
            ("phone", phone, normalize_phone),
        ):
            if not value.strip():
                continue
            try:
                normalized[kind] = normalize(value)
            except InvalidContact as exc:
                violations.append((f"{prefix}{kind}", str(exc)))
        hashes = {
            kind: contact_hash(self._hash_key, kind, value) if value else ""
            for kind, value in normalized.items()
        }
        return (
            Contacts(normalized["email"], normalized["phone"], hashes["email"], hashes["phone"]),
            violations,
        )

    def _validated(self, personal: PersonalInput, prefix: str) -> tuple[PersonalData, Contacts]:
        contacts, violations = self._contacts(personal.email, personal.phone, prefix)
        violations += [
            (name.replace("profile.", prefix), why)
            for name, why in d.validate_personal(
                name=personal.name,
                address=personal.address,
                notes=personal.notes,
                locale=personal.locale,
                has_contact=bool(personal.email.strip() or personal.phone.strip()),
            )
        ]
        if violations:
            raise d.InvalidCommand(violations)
        plaintext = PersonalData(
            name=personal.name.strip(),
            email=contacts.email,
            phone=contacts.phone,
            address=personal.address.strip(),
            notes=personal.notes,
        )
        return plaintext, contacts

    def registration(self, personal: PersonalInput) -> Registration:
        """Returns the registration of these personal fields, validated once (raises
        InvalidCommand when they are invalid)."""
        plaintext, contacts = self._validated(personal, "profile.")
        return Registration(plaintext, contacts, personal.locale.strip())

    # ------------------------------------------------------------------------- commands

    async def _execute(
        self,
        customer_id: str,
        command: d.Command,
        *,
        command_id: str,
        actor: str,
        causation_id: str = "",
    ) -> CommandResult[d.Customer]:
        now = self.clock()
        return await self.run(
            customer_id,
            lambda state: d.decide(state, command, now=now),
            now=now,
            command_id=command_id,
            actor=actor,
            causation_id=causation_id,
            policy_versions={RFM_MODEL_KEY: self.model.version},
            expect_new=isinstance(command, d.RegisterCustomer),
        )

    async def register(
        self,
        customer_id: str,
        personal: PersonalInput,
        consent: d.Consent,
        *,
        command_id: str,
        actor: str,
    ) -> CommandResult[d.Customer]:
        """Registers a customer: validate, create the data key, seal, append."""
        result, _ = await self.register_validated(
            customer_id, self.registration(personal), consent, command_id=command_id, actor=actor
        )
        return result

    async def register_validated(
        self,
        customer_id: str,
        registration: Registration,
        consent: d.Consent,
        *,
        command_id: str,
        actor: str,
    ) -> tuple[CommandResult[d.Customer], PersonalData | None]:
        """`register` of a validated registration; also returns the registered customer's
        personal record as `open_personal` opens it, decrypted with the data key in hand (the
        key is durable before the event is appended; the reply reads no key store)."""
        try:
            key = await asyncio.to_thread(self.keys.ensure, customer_id, self.clock())
        except KeyDestroyed:
            raise d.IllegalTransition(f"customer {customer_id} was erased") from None
        command = d.RegisterCustomer(
            customer_id=customer_id,
            personal=seal(key, customer_id, registration.plaintext.SerializeToString()),
            email_hash=registration.contacts.email_hash,
            phone_hash=registration.contacts.phone_hash,
            locale=registration.locale,
            consent=consent,
        )
        result = await self._execute(customer_id, command, command_id=command_id, actor=actor)
        if result.events:
            REGISTERED.inc()
        sealed = result.state.personal
        return result, self._opened(customer_id, sealed, key) if sealed is not None else None

    async def update_profile(
        self,
        customer_id: str,
        changes: dict[str, str],
        consent: d.Consent | None,
        *,
        command_id: str,
        actor: str,
    ) -> CommandResult[d.Customer]:
        """Changes the given fields (name, email, phone, address, notes, locale) and consent."""
        loaded = await self.repository.load(customer_id, refresh=True)
        state = loaded.state
        if not state.exists:
            raise d.CustomerNotFound(f"customer {customer_id} does not exist")
        if state.forgotten:
            raise d.IllegalTransition(f"customer {customer_id} was erased")
        current = await asyncio.to_thread(self.open_personal, customer_id, state.personal)
        if current is None:
            raise d.IllegalTransition(
                f"the personal data of {customer_id} cannot be decrypted; see the key store"
            )
        merged = PersonalInput(
            name=changes.get("name", current.name),
            email=changes.get("email", current.email),
            phone=changes.get("phone", current.phone),
            address=changes.get("address", current.address),
            notes=changes.get("notes", current.notes),
            locale=changes.get("locale", state.locale),
        )
        plaintext, contacts = self._validated(merged, "")
        new_consent = consent or state.consent
        changed = tuple(
            name
            for name in ("name", "email", "phone", "address", "notes")
            if getattr(plaintext, name) != getattr(current, name)
        )
        changed += ("locale",) if merged.locale.strip() != state.locale else ()
        changed += ("consent",) if new_consent != state.consent else ()
        if not changed:
            return CommandResult(state, loaded.version, [])
        try:
            key = await asyncio.to_thread(self.keys.get, customer_id)
        except (KeyDestroyed, DecryptionFailed):
            raise d.IllegalTransition(f"customer {customer_id} was erased meanwhile") from None
        command = d.UpdateProfile(
            personal=seal(key, customer_id, plaintext.SerializeToString()),
            email_hash=contacts.email_hash,
            phone_hash=contacts.phone_hash,
            locale=merged.locale.strip(),
            consent=new_consent,
            changed=changed,
        )
        return await self._execute(customer_id, command, command_id=command_id, actor=actor)

    async def tag(
        self,
        customer_id: str,
        add: Sequence[str],
        remove: Sequence[str],
        *,
        command_id: str,
        actor: str,
    ) -> CommandResult[d.Customer]:
        command = d.TagCustomer(tuple(add), tuple(remove))
        return await self._execute(customer_id, command, command_id=command_id, actor=actor)

    async def record_purchase(
        self, customer_id: str, command: d.RecordPurchase, *, command_id: str, actor: str
    ) -> CommandResult[d.Customer]:
        result = await self._execute(customer_id, command, command_id=command_id, actor=actor)
        for event in result.events:
            if isinstance(event, d.PurchaseRecorded):
                PURCHASES.labels(event.currency).inc()
        return result

    async def assign_segment(
        self, customer_id: str, segment: d.Segment, *, command_id: str, causation_id: str = ""
    ) -> CommandResult[d.Customer]:
        """Appends SegmentAssigned when the computed segment differs from the recorded one."""
        command = d.AssignSegment(segment, self.model.version)
        result = await self._execute(
            customer_id,
            command,
            command_id=command_id,
            actor="segmentation",
            causation_id=causation_id,
        )
        for event in result.events:
            if isinstance(event, d.SegmentAssigned):
                SEGMENT_CHANGES.labels(event.tier.value).inc()
        return result

    async def erase(
        self, customer_id: str, reason: d.ErasureReason | None, *, command_id: str, actor: str
    ) -> CommandResult[d.Customer]:
        """Destroys the data key (durably), then appends CustomerForgotten. A retry of the same
        command returns the original result; a second erasure is an IllegalTransition."""
        if reason is None:
            raise d.InvalidCommand(
                [("reason", "must be specified (not ERASURE_REASON_UNSPECIFIED)")]
            )
        loaded = await self.repository.load(customer_id, refresh=True)
        if command_id in loaded.commands:
            return await self._forget(customer_id, reason, actor, command_id)
        if not loaded.state.exists:
            raise d.CustomerNotFound(f"customer {customer_id} does not exist")
        if loaded.state.forgotten:
            raise d.IllegalTransition(f"customer {customer_id} was already erased")
        await asyncio.to_thread(self.keys.destroy, customer_id, self.clock(), reason.value)
        result = await self._forget(customer_id, reason, actor, command_id)
        ERASURES.labels(reason.value).inc()
        log.info("customer erased", extra={"customer_id": customer_id, "reason": reason.value})
        return result

    async def _forget(
        self, customer_id: str, reason: d.ErasureReason, actor: str, command_id: str
    ) -> CommandResult[d.Customer]:
        result = await self._execute(
            customer_id, d.ForgetCustomer(reason), command_id=command_id, actor=actor
        )
        await asyncio.to_thread(self.keys.mark_logged, customer_id)
        return result

    async def record_notification(
        self,
        customer_id: str,
        command: d.RecordNotification,
        *,
        command_id: str,
        causation_id: str = "",
    ) -> CommandResult[d.Customer]:
        """Records that the customer was told about an incident (or that it failed);
        IllegalTransition for an erased customer."""
        return await self._execute(
            customer_id,
            command,
            command_id=command_id,
            actor="incident-notices",
            causation_id=causation_id,
        )

    async def reconcile_erasures(self) -> int:
        """Appends CustomerForgotten for keys destroyed by a process that died before it could;
        returns how many it completed."""
        done = 0
        for customer_id, reason in await asyncio.to_thread(self.keys.unlogged_erasures):
            state = (await self.repository.load(customer_id, refresh=True)).state
            if state.exists and not state.forgotten:
                await self._forget(
                    customer_id, d.ErasureReason(reason), "reconciliation", f"erase-{customer_id}"
                )
                done += 1
                log.warning("completed an interrupted erasure", extra={"customer_id": customer_id})
            else:
                await asyncio.to_thread(self.keys.mark_logged, customer_id)
        return done

    # ------------------------------------------------------------------------- reads

    async def get(self, customer_id: str) -> tuple[d.Customer, int]:
        loaded = await self.repository.load(customer_id, refresh=True)
        if not loaded.state.exists:
            raise d.CustomerNotFound(f"customer {customer_id} does not exist")
        return loaded.state, loaded.version

    def open_personal(self, customer_id: str, sealed: d.Sealed | None) -> PersonalData | None:
        """Decrypts a sealed record (blocking); None when erased or undecryptable."""
        if sealed is None:
            return None
        try:
            key = self.keys.get(customer_id)
        except KeyDestroyed:
            return None
        except DecryptionFailed as exc:
            _undecryptable(customer_id, exc)
            return None
        return self._opened(customer_id, sealed, key)

    @staticmethod
    def _opened(customer_id: str, sealed: d.Sealed, key: bytes) -> PersonalData | None:
        """Decrypts a sealed record with the customer's data key; None when it cannot."""
        try:
            plaintext = unseal(key, customer_id, sealed)
        except DecryptionFailed as exc:
            _undecryptable(customer_id, exc)
            return None
        personal = PersonalData()
        try:
            personal.ParseFromString(plaintext)
        except DecodeError:
            return None
        return personal

    @staticmethod
    def export_requested() -> None:
        EXPORTS.inc()


def _undecryptable(customer_id: str, exc: DecryptionFailed) -> None:
    log.warning(
        "personal data cannot be decrypted",
        extra={"customer_id": customer_id, "reason": exc.reason},
    )


# ------------------------------------------------------------------------- edge use cases

ContactOwner = Callable[[str, str], Awaitable[str | None]]
"""Returns the id of the customer registered with a contact (kind, keyed hash), or None."""


@dataclass(frozen=True)
class RecordedPurchase:
    """The purchase a RecordPurchase answers with (the first one, on a retry)."""

    order_id: str
    amount_minor: int
    currency: str
    purchased_at: datetime


class Profiles:
    """Registration, profile changes and purchases as the API offers them: contacts are unique
    across customers, and an idempotency key stands for one request only."""

    def __init__(self, app: CustomerApp, owner_of: ContactOwner) -> None:
        self._app = app
        self._owner_of = owner_of

    async def register(
        self,
        customer_id: str,
        personal: PersonalInput,
        consent: d.Consent,
        *,
        command_id: str,
        actor: str,
    ) -> CommandResult[d.Customer]:
        """Registers a customer whose contacts nobody else has (ALREADY_EXISTS otherwise)."""
        result, _ = await self.register_opened(
            customer_id, personal, consent, command_id=command_id, actor=actor
        )
        return result

    async def register_opened(
        self,
        customer_id: str,
        personal: PersonalInput,
        consent: d.Consent,
        *,
        command_id: str,
        actor: str,
    ) -> tuple[CommandResult[d.Customer], PersonalData | None]:
        """`register`, and the personal record as the reply shows it (validated once, the
        contacts' hashes computed once)."""
        registration = self._app.registration(personal)
        contacts = registration.contacts
        await self._ensure_unowned("email", contacts.email_hash, customer_id, "profile.")
        await self._ensure_unowned("phone", contacts.phone_hash, customer_id, "profile.")
        return await self._app.register_validated(
            customer_id, registration, consent, command_id=command_id, actor=actor
        )

    async def update_profile(
        self,
        customer_id: str,
        changes: dict[str, str],
        consent: d.Consent | None,
        *,
        command_id: str,
        actor: str,
    ) -> CommandResult[d.Customer]:
        """Changes the profile; a new contact must not belong to another customer."""
        for kind in ("email", "phone"):
            if kind in changes:
                await self.ensure_free(kind, changes[kind], customer_id, prefix="")
        return await self._app.update_profile(
            customer_id, changes, consent, command_id=command_id, actor=actor
        )

    async def ensure_free(
        self, kind: str, value: str, customer_id: str, prefix: str = "profile."
    ) -> None:
        """Raises ALREADY_EXISTS when another customer has this e-mail / phone."""
        if value.strip():
            await self._ensure_unowned(
                kind, self._app.hash_contact(kind, value), customer_id, prefix
            )

    async def _ensure_unowned(self, kind: str, digest: str, customer_id: str, prefix: str) -> None:
        """Raises ALREADY_EXISTS when another customer has the contact of this keyed hash (none
        when empty)."""
        if not digest:
            return
        owner = await self._owner_of(kind, digest)
        if owner is not None and owner != customer_id:
            raise AlreadyExists(
                f"customer {owner} already has this {kind.replace('email', 'e-mail')}",
                [FieldViolation(f"{prefix}{kind}", "already registered")],
            )

    async def record_purchase(
        self, customer_id: str, command: d.RecordPurchase, *, command_id: str, actor: str
    ) -> tuple[CommandResult[d.Customer], RecordedPurchase]:
        """Records a purchase; returns it as recorded. INVALID_ARGUMENT when the idempotency
        key answered with an earlier command for another order."""
        result = await self._app.record_purchase(
            customer_id, command, command_id=command_id, actor=actor
        )
        if command.order_id not in result.state.orders:
            raise InvalidArgument(
                "this idempotency-key was used for another request",
                [FieldViolation("idempotency-key", "already used for another order")],
            )
        amount, currency = result.state.orders[command.order_id]
        recorded = next((e for e in result.events if isinstance(e, d.PurchaseRecorded)), None)
        at = recorded.purchased_at if recorded else (command.purchased_at or self._app.clock())
        return result, RecordedPurchase(command.order_id, amount, currency, at)


def average_csat(scores: Sequence[int]) -> float | None:
    """Returns the mean CSAT of the surveys, to 3 places (None: no survey)."""
    return round(sum(scores) / len(scores), 3) if scores else None


class ExportedTicket(Protocol):
    """A ticket of the customer as the export lists it."""

    @property
    def ticket_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def opened_at(self) -> datetime: ...


def export_document(
    *,
    view: dict[str, Any],
    purchases: Sequence[dict[str, Any]],
    tickets: Sequence[ExportedTicket],
    erased: bool,
) -> dict[str, Any]:
    """Returns the data-subject access document: the 360° view (`view`, rendered) with every
    purchase instead of the recent ones, every ticket, and whether personal data remains."""
    document = dict(view)
    document.pop("recent_purchases", None)
    document["purchases"] = list(purchases)
    document["tickets"] = [
        {
            "ticket_id": ticket.ticket_id,
            "channel": ticket.channel,
            "type": ticket.type,
            "priority": ticket.priority,
            "status": ticket.status,
            "opened_at": ticket.opened_at.isoformat(),
        }
        for ticket in tickets
    ]
    document["erased"] = erased
    document["note"] = (
        "Personal data was erased; only non-personal facts remain."
        if erased
        else "Personal data is decrypted from the customer's encrypted record."
    )
    return document
