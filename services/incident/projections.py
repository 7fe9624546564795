"""Incident projections: incidents / pages / timeline read models, the escalation and drill
timers, the drills read model, and customer-profile's notices about incidents."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from careops_eventstore.codec import DecodedEvent, from_timestamp
from careops_eventstore.rows import rows
from careops_eventstore.sqlstate import insert_for, timers
from careops_eventstore.timers import DueTimer, cancel, cancel_all, schedule
from careops_published import customer as cu
from careops_published.codec import view_codec
from sqlalchemy import Connection, Table, bindparam, insert, update

from incident import domain as d
from incident.readmodels import (
    customer_notices,
    drills,
    incidents,
    pages,
    status_incidents,
    status_updates,
    surge_incidents,
    timeline,
)

STATUS_AFTER = {
    d.IncidentResolved: d.Status.RESOLVED,
    d.IncidentClosed: d.Status.CLOSED,
}


# Built once; rows and keys are parameters (careops_eventstore.rows: one executemany per kind).
# An UPDATE sets the columns its parameters name.
_INSERT_INCIDENT = insert(incidents)
_UPDATE_INCIDENT = update(incidents).where(incidents.c.incident_id == bindparam("b_incident"))
_INSERT_PAGE = insert(pages)
_CLOSE_PAGES = (
    update(pages).where(pages.c.incident_id == bindparam("b_incident")).values(closed=True)
)
_UPDATE_PAGE = update(pages).where(pages.c.page_id == bindparam("b_page"))
_CLOSE_SURGE = (
    update(surge_incidents)
    .where(surge_incidents.c.incident_id == bindparam("b_incident"))
    .values(open=False)
)
_INSERT_STEP = insert(timeline)


class IncidentProjection:
    """Maintains incidents, incident_pages and incident_timeline. Its writes are batched
    (careops_eventstore.rows), all keyed by the incident (a page is its incident's); the
    incident's status is remembered as written, for an acknowledgement to read."""

    name = "incidents"
    tables: tuple[Table, ...] = (incidents, pages, timeline)
    batched_writes = True

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        envelope = event.envelope
        if envelope.aggregate_type != "incident":
            return
        incident_id = envelope.aggregate_id
        at = from_timestamp(envelope.occurred_at)
        self._timeline(connection, incident_id, position, event, at)
        writer = rows(connection)
        if isinstance(payload, d.IncidentDeclared):
            declared = {
                "incident_id": incident_id,
                "declared_sequence": position,
                "type": payload.type,
                "title": payload.title,
                "level": payload.level.value,
                "status": d.Status.DECLARED.value,
                "source": payload.source.value,
                "drill": payload.drill,
                "risk_index": payload.risk_index,
                "matrix_version": payload.matrix_version,
                "surge_key": payload.surge_key,
                "declared_at": at,
                "response_deadline_missed": False,
                "version": position,
            }
            writer.write(_INSERT_INCIDENT, declared, key=incident_id)
            writer.remember((incidents.name, incident_id), declared["status"])
            return
        changes = self._changes(connection, incident_id, payload, at, position)
        changes["version"] = position
        writer.write(_UPDATE_INCIDENT, {**changes, "b_incident": incident_id}, key=incident_id)
        if "status" in changes:
            writer.remember((incidents.name, incident_id), changes["status"])

    def _changes(
        self, connection: Connection, incident_id: str, payload: Any, at: Any, position: int
    ) -> dict[str, Any]:
        status = STATUS_AFTER.get(type(payload))
        writer = rows(connection)
        if status is not None:
            writer.write(_CLOSE_PAGES, {"b_incident": incident_id}, key=incident_id)
            writer.write(_CLOSE_SURGE, {"b_incident": incident_id}, key=incident_id)
            extra = {"resolved_at": at} if status is d.Status.RESOLVED else {}
            return {"status": status.value, **extra}
        match payload:
            case d.PageRequested():
                page = {
                    "page_id": payload.page_id,
                    "incident_id": incident_id,
                    "team_id": payload.team_id,
                    "member_id": payload.member_id,
                    "engagement": payload.engagement.value,
                    "step": payload.step,
                    "round": payload.round,
                    "requested_at": at,
                    "ack_due_at": payload.ack_due_at,
                    "escalated": False,
                    "closed": False,
                    "sequence": position,
                }
                writer.write(_INSERT_PAGE, page, key=incident_id)
            case d.PageAcknowledged():
                acknowledged = {"acknowledged_at": at, "b_page": payload.page_id}
                writer.write(_UPDATE_PAGE, acknowledged, key=incident_id)
                return {"status": _acknowledged(connection, incident_id), "acknowledged_at": at}
            case d.PageEscalated():
                escalated = {"escalated": True, "b_page": payload.page_id}
                writer.write(_UPDATE_PAGE, escalated, key=incident_id)
            case d.IncidentReassessed():
                return {"level": payload.to_level.value, "risk_index": payload.risk_index}
            case d.IncidentEscalated():
                return {"level": payload.to_level.value}
            case d.ResponseDeadlineMissed():
                return {"response_deadline_missed": True}
        return {}

    @staticmethod
    def _timeline(
        connection: Connection, incident_id: str, position: int, event: DecodedEvent, at: Any
    ) -> None:
        text = _describe(event.event)
        if text is None:
            return
        step = {
            "incident_id": incident_id,
            "sequence": position,
            "position": uuid.UUID(event.envelope.event_id).int % 2**31,
            "at": at,
            "kind": type(event.event).__name__,
            "text": text,
        }
        rows(connection).write(_INSERT_STEP, step, key=incident_id)


def _acknowledged(connection: Connection, incident_id: str) -> Any:
    """The status after an acknowledgement: the incident's as last written in this batch (every
    write of its status is remembered), else as the database has it."""
    status = rows(connection).recall((incidents.name, incident_id))
    if status is None:
        row = connection.execute(
            incidents.select().where(incidents.c.incident_id == incident_id)
        ).one()
        status = row.status
    return d.Status.ACKNOWLEDGED.value if status == d.Status.DECLARED.value else status


def _describe(payload: Any) -> str | None:
    match payload:
        case d.IncidentDeclared():
            return f"declared level {payload.level.value.upper()} {payload.type}: {payload.title}"
        case d.TeamEngaged():
            verb = "paged" if payload.paged else "informed"
            return f"{payload.team_id} engaged ({payload.engagement.value}, {verb})"
        case d.PageRequested():
            return f"paged {payload.member_id} of {payload.team_id} (step {payload.step})"
        case d.PageAcknowledged():
            return f"{payload.member_id} acknowledged {payload.page_id}"
        case d.PageEscalated():
            return f"{payload.page_id} escalated: {payload.reason}"
        case d.NotificationFailed():
            return f"{payload.kind.value} delivery of {payload.notice_id} failed: {payload.error}"
        case d.UpdateAdded():
            return payload.message
        case d.StatementPublished():
            return f"public statement v{payload.version} published: {payload.headline}"
        case d.CustomersNotificationDecided():
            segments = ", ".join(payload.segments) or "none"
            return (
                f"customers to be told ({payload.template_id}, statement "
                f"v{payload.statement_version}): {len(payload.customer_ids)} linked, "
                f"{len(payload.ticket_ids)} tickets, segments {segments}"
            )
        case d.RoleAssigned():
            return f"{payload.role}: {payload.member_id}"
        case d.IncidentResolved():
            return f"resolved: {payload.summary}"
        case d.IncidentClosed():
            return "closed with post-incident review"
        case d.ResponseDeadlineMissed():
            return "response deadline missed"
        case d.EscalationExhausted():
            return f"nobody in {payload.team_id} acknowledged"
        case d.PageContactsDue():
            kinds = ", ".join(c.kind.value for c in payload.contacts if c.kind)
            return f"{payload.page_id} unacknowledged after {payload.delay_seconds}s: {kinds}"
    return None


def page_timer_id(page_id: str) -> str:
    return f"inc.{page_id}.ack"


def contact_timer_id(page_id: str, delay_seconds: int) -> str:
    return f"inc.{page_id}.contact.{delay_seconds}"


CONTACT_TIMER = "page_contact"


def cancel_contacts(connection: Connection, incident_id: str, page_id: str) -> None:
    """Cancels a page's pending delayed contacts (its member's later notification rules):
    an acknowledged or escalated page reaches nobody more."""
    connection.execute(
        timers.delete().where(
            timers.c.aggregate_id == incident_id,
            timers.c.kind == CONTACT_TIMER,
            timers.c.timer_id.startswith(contact_timer_id(page_id, 0)[:-1], autoescape=True),
        )
    )


def response_timer_id(incident_id: str) -> str:
    return f"inc.{incident_id}.response"


class IncidentTimerProjection:
    """Keeps acknowledgement deadlines of pages, their delayed contacts (cancelled once the page
    is acknowledged or escalated, or the incident resolved) and the response deadline in
    `timers`."""

    name = "incident_timers"
    tables: tuple[Table, ...] = (timers,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        incident_id = event.envelope.aggregate_id
        match payload:
            case d.PageRequested():
                schedule(
                    connection,
                    DueTimer(
                        page_timer_id(payload.page_id),
                        incident_id,
                        "page_ack",
                        payload.ack_due_at,
                        {"page_id": payload.page_id},
                    ),
                )
                requested_at = from_timestamp(event.envelope.occurred_at)
                for delay in d.escalation.delays(payload.plan):
                    schedule(
                        connection,
                        DueTimer(
                            contact_timer_id(payload.page_id, delay),
                            incident_id,
                            CONTACT_TIMER,
                            requested_at + timedelta(seconds=delay),
                            {"page_id": payload.page_id, "delay_seconds": delay},
                        ),
                    )
            case d.PageAcknowledged() | d.PageEscalated():
                cancel(connection, page_timer_id(payload.page_id))
                cancel_contacts(connection, incident_id, payload.page_id)
            case d.IncidentDeclared() | d.IncidentReassessed() | d.IncidentEscalated():
                schedule(
                    connection,
                    DueTimer(
                        response_timer_id(incident_id),
                        incident_id,
                        "response",
                        payload.response_due_at,
                        {},
                    ),
                )
            case d.ResponseDeadlineMissed():
                cancel(connection, response_timer_id(incident_id))
            case d.IncidentResolved() | d.IncidentClosed():
                connection.execute(timers.delete().where(timers.c.aggregate_id == incident_id))
            case d.DrillScheduled() | d.DrillRunStarted() | d.DrillRunFailed() | d.DrillCancelled():
                drill_timers(connection, incident_id, payload)


def drill_timer_id(drill_id: str, run: int) -> str:
    return f"drill.{drill_id}.{run}"


def drill_timers(connection: Connection, drill_id: str, payload: Any) -> None:
    """Keeps a drill's next run in `timers` (one timer per run, so each is fired once)."""
    match payload:
        case d.DrillScheduled():
            due = DueTimer(drill_timer_id(drill_id, 0), drill_id, "drill", payload.due_at, {})
            schedule(connection, due)
        case d.DrillRunStarted() | d.DrillRunFailed():
            cancel(connection, drill_timer_id(drill_id, payload.run))
            if payload.next_due_at is not None:
                following = drill_timer_id(drill_id, payload.run + 1)
                schedule(
                    connection, DueTimer(following, drill_id, "drill", payload.next_due_at, {})
                )
        case d.DrillCancelled():
            cancel_all(connection, drill_id)


class DrillProjection:
    """Maintains `drills`: every drill with its status, next run and latest incident."""

    name = "drills"
    tables: tuple[Table, ...] = (drills,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        drill_id = event.envelope.aggregate_id
        match payload:
            case d.DrillScheduled():
                connection.execute(
                    insert(drills).values(
                        drill_id=drill_id,
                        scheduled_sequence=position,
                        scenario_id=payload.scenario.scenario_id,
                        title=payload.scenario.title[:200],
                        recurrence=payload.recurrence.value,
                        status=d.DrillStatus.SCHEDULED.value,
                        next_due_at=payload.due_at,
                        runs=0,
                        last_incident_id="",
                        version=position,
                    )
                )
                return
            case d.DrillRunStarted() | d.DrillRunFailed():
                status = d.DrillStatus.SCHEDULED if payload.next_due_at else d.DrillStatus.DONE
                changes: dict[str, Any] = {
                    "status": status.value,
                    "next_due_at": payload.next_due_at,
                    "runs": payload.run + 1,
                }
                if isinstance(payload, d.DrillRunStarted):
                    changes["last_incident_id"] = payload.incident_id
            case d.DrillCancelled():
                changes = {"status": d.DrillStatus.CANCELLED.value, "next_due_at": None}
            case d.DrillFigureRecorded():
                changes = {}
            case _:
                return
        connection.execute(
            update(drills).where(drills.c.drill_id == drill_id).values(**changes, version=position)
        )


class StatusPageProjection:
    """Maintains the public status page's read model (status_incidents, status_updates) from
    public facts only: when an incident was declared and resolved, and its published
    statements. Drills are never written; nothing internal (members, teams, pages, risk,
    updates) is copied."""

    name = "status_page"
    tables: tuple[Table, ...] = (status_incidents, status_updates)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        envelope = event.envelope
        if envelope.aggregate_type != "incident":
            return
        payload = event.event
        incident_id = envelope.aggregate_id
        at = from_timestamp(envelope.occurred_at)
        if isinstance(payload, d.IncidentDeclared):
            if not payload.drill:
                connection.execute(
                    insert(status_incidents).values(
                        incident_id=incident_id,
                        declared_sequence=position,
                        declared_at=at,
                        open=True,
                        published=False,
                    )
                )
            return
        row = status_incidents.c.incident_id == incident_id
        match payload:
            case d.StatementPublished():
                listed = connection.execute(
                    update(status_incidents).where(row).values(published=True)
                )
                if listed.rowcount:  # a drill has no row: its statements stay off the page
                    connection.execute(
                        insert(status_updates).values(
                            incident_id=incident_id,
                            version=payload.version,
                            published_at=at,
                            headline=payload.headline,
                            text=payload.text,
                            headline_en=payload.headline_en,
                            text_en=payload.text_en,
                        )
                    )
            case d.IncidentResolved():
                connection.execute(
                    update(status_incidents).where(row).values(open=False, resolved_at=at)
                )


NOTICES_CODEC = view_codec(cu.CustomerNotified)


class CustomerNoticeProjection:
    """Maintains customer_notices from customer-profile's published CustomerNotified (its
    stream, read as the view): one row per customer and notification with its last outcome,
    so a redelivered or retried notice counts once."""

    name = "incident_customer_notices"
    tables: tuple[Table, ...] = (customer_notices,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        notified = event.event
        if not isinstance(notified, cu.CustomerNotified):
            return
        values = {
            "notification_id": notified.notification_id,
            "customer_id": event.envelope.aggregate_id,
            "incident_id": notified.incident_id,
            "channel": notified.channel or "unspecified",
            "delivered": notified.delivered,
        }
        connection.execute(
            insert_for(connection.dialect.name)(customer_notices)
            .values(**values)
            .on_conflict_do_update(
                index_elements=["notification_id", "customer_id"],
                set_={"channel": values["channel"], "delivered": notified.delivered},
            )
        )
