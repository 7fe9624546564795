"""Compensation within limits (000 step 7): grants on a ticket up to the caller's limit per ticket,
above it a request a supervisor approves or rejects. Pure: the caller's limit comes in the command
(the application reads it from the limits configuration for the caller's roles).

Amounts are decimal strings in major units ("2500", "19.90") with an ISO 4217 currency code; the
limit is cumulative per ticket and currency over its grants (direct and approved).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from careops_published.sealed import SealedText

from ticketing.domain.errors import IllegalTransition, TicketError, require
from ticketing.domain.values import ACTIVE, MAX_ID, MAX_SUBJECT, Status

if TYPE_CHECKING:
    from ticketing.domain.ticket import Ticket

AMOUNT = re.compile(r"\d{1,12}(\.\d{1,2})?")
CURRENCY = re.compile(r"[A-Z]{3}")
ANY_CURRENCY = "*"
# A ticket takes compensation while it is worked or just resolved; a closed ticket is done.
COMPENSABLE = ACTIVE | {Status.RESOLVED}


class CompensationKind(StrEnum):
    """What the customer is given."""

    REFUND = "refund"
    DISCOUNT = "discount"
    REPLACEMENT = "replacement"
    GIFT = "gift"


class CompensationStatus(StrEnum):
    """Where a compensation stands."""

    PENDING = "pending"
    GRANTED = "granted"
    REJECTED = "rejected"


class CompensationNotFound(TicketError):
    """The ticket has no compensation with that id."""


class LimitExceeded(TicketError):
    """The caller's limit does not cover the compensation they would approve."""


@dataclass(frozen=True)
class CompensationLimits:
    """Per-role limits per ticket: role -> currency (or `*` for any other) -> amount."""

    by_role: Mapping[str, Mapping[str, Decimal]]

    def grants(self, roles: Iterable[str]) -> bool:
        """Returns whether any of `roles` has a limit at all (a role without one never grants)."""
        return any(role in self.by_role for role in roles)

    def limit_for(self, roles: Iterable[str], currency: str) -> Decimal:
        """Returns the highest limit any of `roles` has in `currency` (0: none may grant)."""
        best = Decimal(0)
        for role in roles:
            limits = self.by_role.get(role, {})
            best = max(best, limits.get(currency, limits.get(ANY_CURRENCY, Decimal(0))))
        return best


# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class GrantCompensation:
    """Grant compensation; above `limit` (the caller's, per ticket) it waits for approval."""

    compensation_id: str
    kind: CompensationKind | None
    amount: str
    currency: str
    reason: str
    by: str = ""
    limit: Decimal = Decimal(0)


@dataclass(frozen=True)
class ApproveCompensation:
    """Approve a pending compensation; `limit` is the approver's and must cover it."""

    compensation_id: str
    reason: str = ""
    by: str = ""
    limit: Decimal = Decimal(0)


@dataclass(frozen=True)
class RejectCompensation:
    """Reject a pending compensation, with a reason."""

    compensation_id: str
    reason: str
    by: str = ""


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class CompensationGranted:
    """Compensation within the granter's limit was granted."""

    compensation_id: str
    kind: CompensationKind
    amount: str
    currency: str
    reason: str
    granted_by: str
    limit: str
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class CompensationRequested:
    """Compensation above the requester's limit waits for a supervisor."""

    compensation_id: str
    kind: CompensationKind
    amount: str
    currency: str
    reason: str
    requested_by: str
    limit: str
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class CompensationApproved:
    """A pending compensation was approved (and so granted)."""

    compensation_id: str
    kind: CompensationKind
    amount: str
    currency: str
    requested_by: str
    approved_by: str
    reason: str = ""
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class CompensationRejected:
    """A pending compensation was rejected."""

    compensation_id: str
    kind: CompensationKind
    amount: str
    currency: str
    requested_by: str
    rejected_by: str
    reason: str
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


CompensationEvent = (
    CompensationGranted | CompensationRequested | CompensationApproved | CompensationRejected
)


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Compensation:
    """One compensation on a ticket, as its events left it."""

    compensation_id: str
    kind: CompensationKind
    amount: str
    currency: str
    reason: str
    status: CompensationStatus
    requested_by: str
    requested_at: datetime
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_reason: str = ""


def granted_total(compensations: Iterable[Compensation], currency: str) -> Decimal:
    """Returns the sum of the granted compensations in `currency`."""
    return sum(
        (
            Decimal(item.amount)
            for item in compensations
            if item.status is CompensationStatus.GRANTED and item.currency == currency
        ),
        Decimal(0),
    )


def evolve_compensations(
    compensations: tuple[Compensation, ...], event: CompensationEvent, at: datetime
) -> tuple[Compensation, ...]:
    """Returns the ticket's compensations after one compensation event."""
    match event:
        case CompensationGranted() | CompensationRequested():
            granted = isinstance(event, CompensationGranted)
            by = event.granted_by if isinstance(event, CompensationGranted) else event.requested_by
            item = Compensation(
                compensation_id=event.compensation_id,
                kind=event.kind,
                amount=event.amount,
                currency=event.currency,
                reason=event.reason,
                status=CompensationStatus.GRANTED if granted else CompensationStatus.PENDING,
                requested_by=by,
                requested_at=at,
                decided_by=by if granted else "",
                decided_at=at if granted else None,
            )
            return (*compensations, item)
        case CompensationApproved() | CompensationRejected():
            approved = isinstance(event, CompensationApproved)
            status = CompensationStatus.GRANTED if approved else CompensationStatus.REJECTED
            by = event.approved_by if isinstance(event, CompensationApproved) else event.rejected_by
            return tuple(
                replace(
                    item, status=status, decided_by=by, decided_at=at, decision_reason=event.reason
                )
                if item.compensation_id == event.compensation_id
                else item
                for item in compensations
            )
    return compensations


# ----------------------------------------------------------------------------- decisions


def _amount(value: str) -> tuple[Decimal | None, list[tuple[str, str]]]:
    """Returns the parsed positive amount, or the violation."""
    text = value.strip()
    if not AMOUNT.fullmatch(text):
        why = "must be a decimal amount in major units with at most 2 decimals (e.g. 19.90)"
        return None, [("amount", why)]
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None, [("amount", "must be a decimal amount")]
    if amount <= 0:
        return None, [("amount", "must be greater than 0")]
    return amount, []


def _reason(value: str, *, required: bool) -> list[tuple[str, str]]:
    if required and not value.strip():
        return [("reason", "must not be empty")]
    if len(value) > MAX_SUBJECT:
        return [("reason", f"must be at most {MAX_SUBJECT} characters")]
    return []


def _id(value: str) -> list[tuple[str, str]]:
    if not value.strip():
        return [("compensation_id", "must not be empty")]
    if len(value) > MAX_ID:
        return [("compensation_id", f"must be at most {MAX_ID} characters")]
    return []


def _text(amount: Decimal) -> str:
    """Returns the canonical decimal string of an amount."""
    return f"{amount:f}"


def grant(state: Ticket, command: GrantCompensation, _ctx: Any) -> list[CompensationEvent]:
    """Grants compensation within the caller's limit per ticket, else requests approval."""
    amount, violations = _amount(command.amount)
    if not CURRENCY.fullmatch(command.currency):
        violations.append(("currency", "must be an ISO 4217 code of 3 capital letters (e.g. CNY)"))
    if command.kind is None:
        violations.append(("kind", "must be specified (not COMPENSATION_KIND_UNSPECIFIED)"))
    violations += _reason(command.reason, required=True)
    require(violations)
    assert amount is not None and command.kind is not None
    if state.status not in COMPENSABLE:
        raise IllegalTransition(f"cannot compensate on ticket {state.ticket_id}: it is closed")
    if any(item.compensation_id == command.compensation_id for item in state.compensations):
        return []  # the same request again (its derived id): already recorded
    total = granted_total(state.compensations, command.currency) + amount
    fields: dict[str, Any] = {
        "compensation_id": command.compensation_id,
        "kind": command.kind,
        "amount": _text(amount),
        "currency": command.currency,
        "reason": command.reason.strip(),
        "limit": _text(command.limit),
    }
    if total <= command.limit:
        return [CompensationGranted(granted_by=command.by, **fields)]
    return [CompensationRequested(requested_by=command.by, **fields)]


def _pending(state: Ticket, compensation_id: str, action: str) -> Compensation:
    """Returns the pending compensation, or raises NotFound / IllegalTransition."""
    for item in state.compensations:
        if item.compensation_id == compensation_id:
            if item.status is not CompensationStatus.PENDING:
                raise IllegalTransition(
                    f"cannot {action} compensation {compensation_id}: it is {item.status.value}"
                )
            return item
    raise CompensationNotFound(f"ticket {state.ticket_id} has no compensation {compensation_id}")


def approve(state: Ticket, command: ApproveCompensation, _ctx: Any) -> list[CompensationEvent]:
    """Approves a pending compensation when the approver's own limit covers the ticket's total."""
    require(_id(command.compensation_id) + _reason(command.reason, required=False))
    item = _pending(state, command.compensation_id, "approve")
    total = granted_total(state.compensations, item.currency) + Decimal(item.amount)
    if total > command.limit:
        raise LimitExceeded(
            f"your limit of {_text(command.limit)} {item.currency} per ticket does not cover "
            f"{_text(total)} {item.currency} on ticket {state.ticket_id}"
        )
    return [
        CompensationApproved(
            compensation_id=item.compensation_id,
            kind=item.kind,
            amount=item.amount,
            currency=item.currency,
            requested_by=item.requested_by,
            approved_by=command.by,
            reason=command.reason.strip(),
        )
    ]


def reject(state: Ticket, command: RejectCompensation, _ctx: Any) -> list[CompensationEvent]:
    """Rejects a pending compensation, with a reason."""
    require(_id(command.compensation_id) + _reason(command.reason, required=True))
    item = _pending(state, command.compensation_id, "reject")
    return [
        CompensationRejected(
            compensation_id=item.compensation_id,
            kind=item.kind,
            amount=item.amount,
            currency=item.currency,
            requested_by=item.requested_by,
            rejected_by=command.by,
            reason=command.reason.strip(),
        )
    ]
