"""Handling checklists for the non-complaint types (DOMAIN §1): each type's steps, ticked in any
order with who and when; the ticket shows what is done and what is left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from careops_published.sealed import SealedText

from ticketing.domain.errors import IllegalTransition, require
from ticketing.domain.values import MAX_SUBJECT, TicketType

CHECKLISTS: dict[TicketType, tuple[str, ...]] = {
    TicketType.CONSULTATION: (
        "confirm_environment",  # model and environment confirmed
        "guide",
        "send_docs",
        "confirm_understood",
    ),
    TicketType.FAULT: (
        "record_symptom",  # symptom and reproduction
        "diagnose",  # remote triage, fault codes and history
        "decide_route",  # on-site or return-to-factory
        "repair",  # repair arranged (with a temporary replacement where needed)
    ),
    TicketType.RETURN: (
        "verify_purchase",  # purchase and reason
        "check_eligibility",  # the policy's conditions
        "collect_proof",
        "arrange_pickup",
        "refund",  # refund or ship the replacement
    ),
}


@dataclass(frozen=True)
class TickChecklistItem:
    """Tick one handling step of the ticket's type; `by` is the caller (set at the edge)."""

    item: str
    by: str = ""
    note: str = ""


@dataclass(frozen=True)
class ChecklistItemTicked:
    """A handling step was done by `by` (the event's time is when)."""

    item: str
    by: str
    note: str = ""
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class ItemTicked:
    """One ticked item as the ticket keeps it."""

    item: str
    by: str
    at: datetime
    note: str = ""


def tick(
    ticket_type: TicketType, ticked: tuple[ItemTicked, ...], command: TickChecklistItem
) -> list[ChecklistItemTicked]:
    """Returns the tick's event; InvalidCommand for an item not on the type's checklist,
    IllegalTransition for a complaint (it has its procedure) or an item already ticked."""
    items = CHECKLISTS.get(ticket_type)
    if items is None:
        raise IllegalTransition(
            f"a {ticket_type} has no checklist; record its steps with RecordComplaintStep"
        )
    violations: list[tuple[str, str]] = []
    if command.item not in items:
        violations.append(("item", f"must be one of {', '.join(items)} for a {ticket_type}"))
    if len(command.note) > MAX_SUBJECT:
        violations.append(("note", f"must be at most {MAX_SUBJECT} characters"))
    require(violations)
    if any(done.item == command.item for done in ticked):
        raise IllegalTransition(f"checklist item {command.item} is already ticked")
    return [ChecklistItemTicked(command.item, command.by, command.note)]
