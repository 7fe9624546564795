"""Customer projections: the customer's own events, and the 360 facts from other contexts.

Other contexts' events are read as their published views (careops_published); no other
service's code is imported. Nothing personal from other contexts is copied: no ticket subjects,
replies or survey comments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from careops_eventstore.codec import DecodedEvent, from_timestamp
from careops_eventstore.rows import RowWriter, rows
from careops_published import incident as inc
from careops_published import quality as qa
from careops_published import ticketing as tk
from careops_published.codec import view_codec
from sqlalchemy import Connection, DateTime, Table, bindparam, case, delete, insert, select, update

from customer import currencies
from customer import domain as d
from customer.readmodels import (
    activity,
    customer_tags,
    customers,
    incident_tickets,
    incidents,
    purchases,
    surveys,
    ticket_activity,
    tickets,
)

# ----------------------------------------------------------------------------- own events


def _summary(event: Any) -> tuple[str, str] | None:
    """Returns (kind, summary) of a customer event for the timeline (never personal data)."""
    match event:
        case d.CustomerRegistered():
            return "registered", f"registered ({event.locale or 'no locale'})"
        case d.ProfileUpdated():
            return "profile_updated", "profile updated: " + ", ".join(event.changed)
        case d.CustomerTagged():
            parts = [f"+{tag}" for tag in event.added] + [f"-{tag}" for tag in event.removed]
            return "tagged", "tags " + " ".join(parts)
        case d.PurchaseRecorded():
            amount = currencies.to_decimal(event.amount_minor, event.currency)
            return "purchase", f"purchase {event.order_id}: {amount} {event.currency}"
        case d.SegmentAssigned():
            churn = ", churn risk" if event.churn_risk else ""
            scores = f"R{event.recency_score} F{event.frequency_score} M{event.monetary_score}"
            return "segment", f"segment {event.tier.value} ({scores}){churn}"
        case d.CustomerForgotten():
            return "erased", f"personal data erased ({event.reason.value})"
        case d.CustomerNotified():
            how = "e-mail" if event.channel == "email" else event.channel
            if event.delivered:
                return "incident_notified", f"notified about incident {event.incident_id} by {how}"
            return (
                "incident_notice_failed",
                f"notice about incident {event.incident_id} not sent: {event.error}",
            )
    return None


def _personal_columns(
    personal: d.Sealed | None, email_hash: str, phone_hash: str
) -> dict[str, Any]:
    return {
        "key_version": personal.key_version if personal else None,
        "sealed_nonce": personal.nonce if personal else None,
        "sealed_personal": personal.ciphertext if personal else None,
        "email_hash": email_hash or None,
        "phone_hash": phone_hash or None,
    }


_C = customers.c


def _update(**values: Any) -> Any:
    """A prebuilt UPDATE of one customer row; parameters customer, at and version are bound
    later."""
    return (
        update(customers)
        .where(_C.customer_id == bindparam("customer"))
        .values(updated_at=bindparam("at"), version=bindparam("version"), **values)
    )


def _bound(*names: str) -> dict[str, Any]:
    return {name: bindparam(name) for name in names}


_PERSONAL = ("key_version", "sealed_nonce", "sealed_personal", "email_hash", "phone_hash")
# One statement per kind of write, built once (SQLAlchemy's per-statement work is paid once,
# and a batch sends each kind as one executemany: careops_eventstore.rows).
_INSERT_ACTIVITY = insert(activity)
_INSERT_CUSTOMER = insert(customers)
_INSERT_PURCHASE = insert(purchases)
_INSERT_TAG = insert(customer_tags)
# Not `in_`: its expanding parameter cannot go into an executemany; one tag per row instead.
_DELETE_TAG = delete(customer_tags).where(
    customer_tags.c.customer_id == bindparam("customer"), customer_tags.c.tag == bindparam("tag")
)
_DELETE_TAGS = delete(customer_tags).where(customer_tags.c.customer_id == bindparam("customer"))
_TOUCH = _update()
_PROFILE = _update(**_bound("locale", "consent_marketing", "consent_profiling", *_PERSONAL))
# The bought time is typed as a bare datetime literal was (the THEN values) and as the column
# (the comparison), exactly as the statement built per event bound them.
_BOUGHT = bindparam("bought", type_=DateTime())
_PURCHASE = _update(
    purchase_count=_C.purchase_count + 1,
    last_purchase_at=case(
        (_C.last_purchase_at.is_(None), _BOUGHT),
        (_C.last_purchase_at < bindparam("bought", type_=_C.last_purchase_at.type), _BOUGHT),
        else_=_C.last_purchase_at,
    ),
)
_SEGMENT = _update(
    **_bound("tier", "recency_score", "frequency_score", "monetary_score", "churn_risk")
)
_FORGET = _update(
    forgotten=True,
    forgotten_at=bindparam("at"),
    locale="",
    **{name: None for name in _PERSONAL},
)


class CustomerProjection:
    """Maintains customers, customer_tags, customer_purchases and customer_activity."""

    name = "customers"
    tables: tuple[Table, ...] = (customers, customer_tags, purchases, activity)
    batched_writes = True  # every write goes through `rows`, none is read back

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        customer_id = event.envelope.aggregate_id
        at = from_timestamp(event.envelope.occurred_at)
        writer = rows(connection)
        described = _summary(payload)
        if described is not None:
            entry = {
                "customer_id": customer_id,
                "at": at,
                "kind": described[0],
                "summary": described[1][:300],
                "sequence": position,
            }
            writer.write(_INSERT_ACTIVITY, entry, key=customer_id)
        if isinstance(payload, d.CustomerRegistered):
            consent = payload.consent or d.Consent()
            row = {
                "customer_id": customer_id,
                "registered_sequence": position,
                "locale": payload.locale,
                "consent_marketing": consent.marketing,
                "consent_profiling": consent.profiling,
                "tier": d.Tier.REGULAR.value,
                "recency_score": 1,
                "frequency_score": 1,
                "monetary_score": 1,
                "registered_at": at,
                "updated_at": at,
                "version": position,
                **_personal_columns(payload.personal, payload.email_hash, payload.phone_hash),
            }
            writer.write(_INSERT_CUSTOMER, row, key=customer_id)
            return
        statement, changes = self._changes(writer, customer_id, payload, position)
        parameters = {"customer": customer_id, "at": at, "version": position, **changes}
        writer.write(statement, parameters, key=customer_id)

    @staticmethod
    def _changes(
        writer: RowWriter, customer_id: str, payload: Any, position: int
    ) -> tuple[Any, dict[str, Any]]:
        """Writes the event's other rows; returns the customer row's UPDATE and its values."""
        match payload:
            case d.ProfileUpdated():
                consent = payload.consent or d.Consent()
                return _PROFILE, {
                    "locale": payload.locale,
                    "consent_marketing": consent.marketing,
                    "consent_profiling": consent.profiling,
                    **_personal_columns(payload.personal, payload.email_hash, payload.phone_hash),
                }
            case d.CustomerTagged():
                for tag in dict.fromkeys(payload.removed):
                    writer.write(
                        _DELETE_TAG, {"customer": customer_id, "tag": tag}, key=customer_id
                    )
                for tag in payload.added:
                    writer.write(
                        _INSERT_TAG, {"customer_id": customer_id, "tag": tag}, key=customer_id
                    )
            case d.PurchaseRecorded():
                bought = {
                    "customer_id": customer_id,
                    "order_id": payload.order_id,
                    "amount_minor": payload.amount_minor,
                    "currency": payload.currency,
                    "purchased_at": payload.purchased_at,
                    "sequence": position,
                }
                writer.write(_INSERT_PURCHASE, bought, key=customer_id)
                return _PURCHASE, {"bought": payload.purchased_at}
            case d.SegmentAssigned():
                return _SEGMENT, {
                    "tier": payload.tier.value,
                    "recency_score": payload.recency_score,
                    "frequency_score": payload.frequency_score,
                    "monetary_score": payload.monetary_score,
                    "churn_risk": payload.churn_risk,
                }
            case d.CustomerForgotten():
                writer.write(_DELETE_TAGS, {"customer": customer_id}, key=customer_id)
                return _FORGET, {}
        return _TOUCH, {}


# ----------------------------------------------------------------------------- ticketing facts


TICKET_CODEC = view_codec(
    tk.TicketOpened,
    tk.TicketAssigned,
    tk.ReplyAdded,
    tk.PriorityChanged,
    tk.TicketEscalated,
    tk.TicketHeld,
    tk.TicketResumed,
    tk.TicketResolved,
    tk.TicketReopened,
    tk.TicketClosed,
    tk.SlaBreached,
    tk.CompensationGranted,
    tk.CompensationRequested,
    tk.CompensationApproved,
    tk.CompensationRejected,
)


def _ticket_change(payload: Any) -> tuple[str, str, str | None]:
    """Returns (kind, summary, new status or None) of a ticket event after the opening."""
    match payload:
        case tk.TicketAssigned():
            return "ticket_assigned", "assigned to an agent", "assigned"
        case tk.ReplyAdded(author="customer"):
            return "customer_replied", "customer replied", None
        case tk.ReplyAdded(internal=True):
            return "agent_note", "agent wrote an internal note", None
        case tk.ReplyAdded():
            return "agent_replied", "agent replied", "in_progress"
        case tk.PriorityChanged():
            return "priority_changed", f"priority changed to {payload.to_priority}", None
        case tk.TicketEscalated():
            return "ticket_escalated", f"escalated to level {payload.level}", None
        case tk.TicketHeld():
            return "ticket_held", f"on hold ({payload.reason})", "on_hold"
        case tk.TicketResumed():
            return "ticket_resumed", "resumed", "in_progress"
        case tk.TicketResolved():
            first = " at first contact" if payload.first_contact else ""
            return "ticket_resolved", f"resolved{first}", "resolved"
        case tk.TicketReopened():
            return "ticket_reopened", "reopened", "in_progress"
        case tk.TicketClosed():
            return "ticket_closed", "closed", "closed"
        case tk.SlaBreached():
            return "sla_breached", f"{payload.clock} SLA breached", None
        case (
            tk.CompensationGranted()
            | tk.CompensationRequested()
            | tk.CompensationApproved()
            | tk.CompensationRejected()
        ):
            return _compensation(payload)
    return "ticket_event", type(payload).__name__, None


COMPENSATION_KINDS = {
    tk.CompensationGranted: ("compensation_granted", "granted"),
    tk.CompensationRequested: ("compensation_requested", "requested, awaiting approval"),
    tk.CompensationApproved: ("compensation_granted", "granted on approval"),
    tk.CompensationRejected: ("compensation_rejected", "rejected"),
}


def _compensation(payload: Any) -> tuple[str, str, None]:
    """Returns the timeline entry of a compensation event: the customer's grants in the 360
    (kind, amount and currency; the reasons are withheld by ticketing's published view)."""
    kind, outcome = COMPENSATION_KINDS[type(payload)]
    summary = f"compensation {payload.kind} {payload.amount} {payload.currency} {outcome}"
    return kind, summary, None


class TicketFactsProjection:
    """Projects CAREOPS_TICKETING into customer_tickets and customer_ticket_activity."""

    name = "customer_tickets"
    tables: tuple[Table, ...] = (tickets, ticket_activity)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        ticket_id = event.envelope.aggregate_id
        at = from_timestamp(event.envelope.occurred_at)
        if isinstance(payload, tk.TicketOpened):
            channel = payload.channel or ""
            connection.execute(
                insert(tickets).values(
                    ticket_id=ticket_id,
                    customer_id=payload.customer_id,
                    channel=channel,
                    type=payload.type or "",
                    priority=payload.priority or "",
                    status="open",
                    opened_at=at,
                    updated_at=at,
                )
            )
            self._entry(
                connection,
                payload.customer_id,
                ticket_id,
                at,
                "ticket_opened",
                channel,
                f"{payload.type} ticket opened via {channel} ({payload.priority} priority)",
                position,
                emotion=payload.emotion or "",
            )
            return
        row = connection.execute(
            select(tickets.c.customer_id, tickets.c.channel).where(tickets.c.ticket_id == ticket_id)
        ).first()
        if row is None:
            return
        kind, summary, status = _ticket_change(payload)
        values: dict[str, Any] = {"updated_at": at}
        if status is not None:
            values["status"] = status
        if isinstance(payload, tk.PriorityChanged) and payload.to_priority:
            values["priority"] = payload.to_priority
        connection.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(values))
        emotion = payload.emotion if isinstance(payload, tk.ReplyAdded) else None
        self._entry(
            connection,
            row.customer_id,
            ticket_id,
            at,
            kind,
            row.channel,
            summary,
            position,
            emotion=emotion or "",
        )

    @staticmethod
    def _entry(
        connection: Connection,
        customer_id: str,
        ticket_id: str,
        at: datetime,
        kind: str,
        channel: str,
        summary: str,
        position: int,
        *,
        emotion: str = "",
    ) -> None:
        connection.execute(
            insert(ticket_activity).values(
                emotion=emotion,
                customer_id=customer_id,
                ticket_id=ticket_id,
                at=at,
                kind=kind,
                channel=channel,
                summary=summary[:300],
                sequence=position,
            )
        )


# ----------------------------------------------------------------------------- incident facts


INCIDENT_CODEC = view_codec(inc.IncidentDeclared, inc.TicketsLinked)


class IncidentFactsProjection:
    """Projects the incidents that affected a customer (CAREOPS_INCIDENT) into the timeline."""

    name = "customer_incidents"
    tables: tuple[Table, ...] = (incidents, incident_tickets)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        incident_id = event.envelope.aggregate_id
        at = from_timestamp(event.envelope.occurred_at)
        if isinstance(payload, inc.IncidentDeclared):
            if payload.drill:
                return
            level = (payload.level or "").upper()
            # The type, not the title: a title is free text staff wrote, and may name people.
            kind_of = payload.type.replace("_", " ")
            summary = f"affected by level {level} incident {incident_id} ({kind_of})"
            kind = "incident_declared"
        else:
            summary = f"ticket linked to incident {incident_id}"
            kind = "incident_linked"
        entry = {"incident_id": incident_id, "at": at, "kind": kind, "summary": summary[:300]}
        self._link(connection, incidents, incidents.c.customer_id, entry, payload.customer_ids)
        self._link(
            connection, incident_tickets, incident_tickets.c.ticket_id, entry, payload.ticket_ids
        )

    @staticmethod
    def _link(
        connection: Connection,
        table: Table,
        key: Any,
        entry: dict[str, Any],
        ids: tuple[str, ...],
    ) -> None:
        """Inserts one row per new id in `ids` (a customer or ticket id): the first link of
        each to the incident stays."""
        known = set(
            connection.execute(select(key).where(table.c.incident_id == entry["incident_id"]))
            .scalars()
            .all()
        )
        rows = [{**entry, key.name: id_} for id_ in dict.fromkeys(ids) if id_ and id_ not in known]
        if rows:
            connection.execute(insert(table), rows)


# ----------------------------------------------------------------------------- quality facts


QUALITY_CODEC = view_codec(qa.SurveySubmitted)


class SurveyFactsProjection:
    """Projects survey answers (CAREOPS_QUALITY) into customer_surveys: the satisfaction history.

    The comment is not copied (free text may hold personal data; quality owns it)."""

    name = "customer_surveys"
    tables: tuple[Table, ...] = (surveys,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        if not isinstance(payload, qa.SurveySubmitted) or not payload.customer_id:
            return
        submitted_at = payload.submitted_at or from_timestamp(event.envelope.occurred_at)
        connection.execute(delete(surveys).where(surveys.c.ticket_id == payload.ticket_id))
        connection.execute(
            insert(surveys).values(
                ticket_id=payload.ticket_id,
                customer_id=payload.customer_id,
                csat=payload.csat,
                nps=payload.nps if payload.has_nps else None,
                emotion=payload.emotion or "",
                channel=payload.channel,
                submitted_at=submitted_at,
            )
        )
