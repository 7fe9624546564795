"""Ticketing projections: the ticket list read model and the SLA deadline timers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from careops_eventstore.codec import DecodedEvent, from_timestamp
from careops_eventstore.rows import rows
from careops_eventstore.sqlstate import timers
from careops_eventstore.timers import DueTimer, cancel_all, cancel_prefixed, schedule
from careops_platform.sealing import Shredder, TextSealer
from careops_published import customer as cu
from careops_published.codec import view_codec
from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from ticketing import domain
from ticketing.readmodels import (
    AGENTS_PROJECTION,
    CONVERSATION_PROJECTION,
    MACROS_PROJECTION,
    TICKETS_PROJECTION,
    agents,
    clocks_json,
    conversation,
    customer_directory,
    macros,
    nearest_due,
    tickets,
)

_T = tickets.c
_OPEN, _ASSIGNED, _IN_PROGRESS = (
    domain.Status.OPEN.value,
    domain.Status.ASSIGNED.value,
    domain.Status.IN_PROGRESS.value,
)
_RESTING = case((_T.assignee_id != "", _IN_PROGRESS), else_=_OPEN)


def _update(**values: Any) -> Any:
    """A prebuilt UPDATE of one ticket row; parameters ticket, at and version are bound later."""
    return (
        update(tickets)
        .where(_T.ticket_id == bindparam("ticket"))
        .values(updated_at=bindparam("at"), version=bindparam("version"), **values)
    )


# One statement per kind of change, built once: status moves are SQL CASE expressions, so no
# event needs to read the row first.
_INSERT = insert(tickets)
_TOUCH = _update()
_SET_STATUS = _update(status=bindparam("status"))
_ASSIGN = _update(
    assignee_id=bindparam("agent"), status=case((_T.status == _OPEN, _ASSIGNED), else_=_T.status)
)
# Not `in_`: its expanding parameter cannot go into an executemany.
_AGENT_REPLY = _update(
    status=case((or_(_T.status == _OPEN, _T.status == _ASSIGNED), _IN_PROGRESS), else_=_T.status)
)
_PRIORITY = _update(priority=bindparam("priority"))
_ESCALATE = _update(escalation_level=bindparam("level"))
_RESUME = _update(status=_RESTING)
_REOPEN = _update(status=_RESTING, reopen_count=_T.reopen_count + 1)
_BREACH = _update(sla_breached=True)
_RETURNED = _update(assignee_id="", status=_OPEN, queued_at=bindparam("queued"))
_PENDING = _update(pending_compensations=_T.pending_compensations + bindparam("delta"))
# An event carrying clocks sets them in the same statement: each kind's variant, built once.
_WITH_CLOCKS: dict[int, Any] = {}


def _with_clocks(statement: Any) -> Any:
    """`statement` also setting `sla` and `sla_due_at` (parameters clocks and due)."""
    found = _WITH_CLOCKS.get(id(statement))
    if found is None:
        found = statement.values(sla=bindparam("clocks"), sla_due_at=bindparam("due"))
        _WITH_CLOCKS[id(statement)] = found
    return found


_STATUS_AFTER: dict[type, str] = {
    domain.TicketHeld: domain.Status.ON_HOLD.value,
    domain.TicketResolved: domain.Status.RESOLVED.value,
    domain.TicketClosed: domain.Status.CLOSED.value,
}


_OTHER_AGGREGATES = (
    domain.AgentPut,
    domain.AgentAvailabilityChanged,
    domain.MacroPut,
    domain.MacroDeleted,
)


def _change(payload: Any, at: datetime) -> tuple[Any, dict[str, Any]]:
    """Returns the statement and the extra parameters that record one event."""
    status = _STATUS_AFTER.get(type(payload))
    if status is not None:
        return _SET_STATUS, {"status": status}
    match payload:
        case domain.TicketAssigned():
            return _ASSIGN, {"agent": payload.agent_id}
        case domain.ReplyAdded(author=domain.Author.AGENT, internal=False):
            return _AGENT_REPLY, {}
        case domain.PriorityChanged():
            return _PRIORITY, {"priority": payload.to_priority.value}
        case domain.TicketEscalated():
            return _ESCALATE, {"level": payload.level}
        case domain.TicketResumed():
            return _RESUME, {}
        case domain.TicketReopened():
            return _REOPEN, {}
        case domain.SlaBreached():
            return _BREACH, {}
        case domain.TicketReturnedToQueue():
            return _RETURNED, {"queued": at}
        case domain.CompensationRequested():
            return _PENDING, {"delta": 1}
        case domain.CompensationApproved() | domain.CompensationRejected():
            return _PENDING, {"delta": -1}
    return _TOUCH, {}


def _clock_values(payload: Any) -> tuple[str, datetime | None] | None:
    """Returns the `sla` (encoded) / `sla_due_at` values of an event carrying clocks, else None."""
    snapshot: domain.SlaSnapshot | None = getattr(payload, "sla", None)
    if snapshot is None:
        return None
    return clocks_json(snapshot.clocks), nearest_due(snapshot.clocks)


class TicketListProjection:
    """Maintains `tickets`: one row per ticket with the fields agents filter on (the subject
    opened with `texts`: empty once the customer is erased)."""

    name = TICKETS_PROJECTION
    tables: tuple[Table, ...] = (tickets,)
    batched_writes = True  # every write goes through `rows`, none is read back

    def __init__(self, texts: TextSealer | None = None) -> None:
        self._texts = texts

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = _opened(self._texts, event.event, connection)
        if isinstance(payload, _OTHER_AGGREGATES):
            return  # the agent directory's and the macros', on the same stream
        ticket_id = event.envelope.aggregate_id
        at = from_timestamp(event.envelope.occurred_at)
        if isinstance(payload, domain.TicketOpened):
            row = {
                "ticket_id": ticket_id,
                "opened_sequence": position,
                "customer_id": payload.customer_id,
                "channel": payload.channel.value,
                "type": payload.type.value,
                "priority": payload.priority.value,
                "status": _OPEN,
                "subject": payload.subject,
                "assignee_id": "",
                "escalation_level": 0,
                "reopen_count": 0,
                "sla_breached": False,
                "created_at": at,
                "updated_at": at,
                "queued_at": at,
                "version": position,
                "sla": None,
                "sla_due_at": None,
                "pending_compensations": 0,
            }
            clocks = _clock_values(payload)
            if clocks is not None:
                row["sla"], row["sla_due_at"] = clocks
            rows(connection).write(_INSERT, row, key=ticket_id)
            return
        statement, parameters = _change(payload, at)
        parameters |= {"ticket": ticket_id, "at": at, "version": position}
        clocks = _clock_values(payload)
        if clocks is not None:
            statement = _with_clocks(statement)
            parameters["clocks"], parameters["due"] = clocks
        rows(connection).write(statement, parameters, key=ticket_id)


def _opened(texts: TextSealer | None, payload: Any, connection: Connection) -> Any:
    """The event with its sealed free text opened (blocking key read: apply runs in a worker
    thread); as it is without a sealer."""
    if texts is None:
        return payload
    return texts.open(payload, connection.get_transaction())


# ----------------------------------------------------------------------------- the conversation


def _entry(payload: Any) -> tuple[str, str, bool] | None:
    """Returns (kind, text, internal) of an event that carries text an agent reads, or None.
    Notes about the ticket's handling (hold, escalation, closing) are internal."""
    # A sealed text whose customer was erased still has its (empty) entry, as before erasure.
    written = getattr(payload, "sealed", None) is not None
    match payload:
        case domain.ReplyAdded():
            return ("note" if payload.internal else "reply"), payload.body, payload.internal
        case domain.TicketHeld(note=str(note)) if note or written:
            return "hold", note, True
        case domain.TicketEscalated(reason=str(reason)) if reason or written:
            return "escalation", reason, True
        case domain.TicketResolved(resolution=str(text)) if text or written:
            return "resolution", text, False
        case domain.TicketReopened(reason=str(reason)) if reason or written:
            return "reopen", reason, False
        case domain.TicketClosed(note=str(note)) if note or written:
            return "close", note, True
    return None


class ConversationProjection:
    """Maintains `conversation`: every text written on a ticket, one row per event, with its
    author, channel, visibility and time (the opening: subject and description)."""

    name = CONVERSATION_PROJECTION
    tables: tuple[Table, ...] = (conversation,)

    def __init__(self, texts: TextSealer | None = None) -> None:
        self._texts = texts

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = _opened(self._texts, event.event, connection)
        envelope = event.envelope
        row: dict[str, Any] = {
            "sequence": position,
            "ticket_id": envelope.aggregate_id,
            "at": from_timestamp(envelope.occurred_at),
            "subject": "",
            "macro_id": "",
            "macro_version": 0,
        }
        if isinstance(payload, domain.TicketOpened):
            row |= {
                "customer_id": payload.customer_id,
                "kind": "opened",
                "author": domain.Author.CUSTOMER.value,
                "author_id": payload.customer_id,
                "channel": payload.channel.value,
                "internal": False,
                "subject": payload.subject,
                "body": payload.description,
            }
            connection.execute(_OPENING, row)
            return
        entry = _entry(payload)
        if entry is None:
            return
        kind, text, internal = entry
        row |= {
            "kind": kind,
            "body": text,
            "internal": internal,
            "author": "",
            "author_id": envelope.actor,
            "opened_ticket": envelope.aggregate_id,
        }
        statement = _ENTRY
        if isinstance(payload, domain.ReplyAdded):
            row |= {
                "author": payload.author.value,
                "author_id": payload.author_id or envelope.actor,
                "macro_id": payload.macro_id,
                "macro_version": payload.macro_version,
            }
            if payload.channel is not None:
                row["channel"] = payload.channel.value
                statement = _ENTRY_ON_CHANNEL
        connection.execute(statement, row)


def _from_opening(column: Any) -> Any:
    """`column` of the ticket's opening row, read by the INSERT itself (no round trip)."""
    c = conversation.c
    found = select(column).where(c.ticket_id == bindparam("opened_ticket"), c.kind == "opened")
    return func.coalesce(found.limit(1).scalar_subquery(), "")


# Built once (not `.values(...)` per event): the opening row, and an entry whose customer (and
# channel, unless the reply names one) come from the opening; the rest are bound by column name.
_OPENING = insert(conversation)
_ENTRY_ON_CHANNEL = insert(conversation).values(
    customer_id=_from_opening(conversation.c.customer_id)
)
_ENTRY = _ENTRY_ON_CHANNEL.values(channel=_from_opening(conversation.c.channel))


class MacroListProjection:
    """Maintains `macros`: each macro as of its last put; a deleted one is removed."""

    name = MACROS_PROJECTION
    tables: tuple[Table, ...] = (macros,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        if not isinstance(payload, domain.MacroPut | domain.MacroDeleted):
            return  # a ticket's event: the stream's other aggregate
        macro_id = event.envelope.aggregate_id
        at = from_timestamp(event.envelope.occurred_at)
        connection.execute(delete(macros).where(macros.c.macro_id == macro_id))
        if isinstance(payload, domain.MacroPut):
            connection.execute(
                insert(macros).values(
                    macro_id=macro_id,
                    title=payload.title,
                    body=payload.body,
                    version=payload.version,
                    updated_at=at,
                )
            )


def timer_id(
    ticket_id: str, clock: domain.SlaClock, kind: domain.SlaTimerKind, due: datetime
) -> str:
    """Returns the deterministic id of one deadline (also the message id of its firing)."""
    return f"sla.{ticket_id}.{clock.value}.{kind.value}.{int(due.timestamp() * 1000)}"


class SlaTimerProjection:
    """Keeps the `timers` table equal to the pending SLA deadlines of every ticket."""

    name = "sla_timers"
    tables: tuple[Table, ...] = (timers,)
    batched_writes = True  # schedule and cancel_* write through `rows`, nothing is read

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        ticket_id = event.envelope.aggregate_id
        snapshot = getattr(event.event, "sla", None)
        if isinstance(event.event, domain.SlaWarningRaised | domain.SlaBreached):
            kind = (
                domain.SlaTimerKind.WARNING
                if isinstance(event.event, domain.SlaWarningRaised)
                else domain.SlaTimerKind.BREACH
            )
            prefix = f"sla.{ticket_id}.{event.event.clock.value}.{kind.value}."
            cancel_prefixed(connection, ticket_id, prefix)
            return
        if isinstance(event.event, domain.TicketClosed):
            cancel_all(connection, ticket_id)
            return
        if isinstance(event.event, domain.ComplaintStepRecorded | domain.ComplaintFollowUpMissed):
            self._follow_up(connection, ticket_id, event.event)
            return
        if snapshot is None:
            return
        # Only the SLA deadlines are rescheduled; a complaint's follow-up timer stays.
        cancel_prefixed(connection, ticket_id, f"sla.{ticket_id}.")
        schedule(
            connection,
            *(
                DueTimer(
                    timer_id=timer_id(ticket_id, clock.clock, kind, due),
                    aggregate_id=ticket_id,
                    kind=f"sla_{kind.value}",
                    due_at=due,
                    data={"clock": clock.clock.value, "kind": kind.value},
                )
                for clock in snapshot.clocks
                for kind, due in self._deadlines(clock)
            ),
        )

    @staticmethod
    def _follow_up(
        connection: Connection,
        ticket_id: str,
        event: domain.ComplaintStepRecorded | domain.ComplaintFollowUpMissed,
    ) -> None:
        """Schedules a complaint's committed follow-up; cancels it once followed up or missed."""
        prefix = f"complaint.{ticket_id}."
        if isinstance(event, domain.ComplaintStepRecorded) and event.follow_up_at is not None:
            due = event.follow_up_at
            schedule(
                connection,
                DueTimer(
                    timer_id=f"{prefix}follow_up.{int(due.timestamp() * 1000)}",
                    aggregate_id=ticket_id,
                    kind=domain.FOLLOW_UP_TIMER,
                    due_at=due,
                    data={"due_at": due.isoformat()},
                ),
            )
            return
        if isinstance(event, domain.ComplaintFollowUpMissed) or (
            event.step is domain.ComplaintStep.FOLLOW_UP
        ):
            cancel_prefixed(connection, ticket_id, prefix)

    @staticmethod
    def _deadlines(
        clock: domain.SlaClockSnapshot,
    ) -> list[tuple[domain.SlaTimerKind, datetime]]:
        deadlines = []
        if clock.running and clock.warn_at and not clock.warned:
            deadlines.append((domain.SlaTimerKind.WARNING, clock.warn_at))
        if clock.running and clock.due_at and not clock.breached:
            deadlines.append((domain.SlaTimerKind.BREACH, clock.due_at))
        return deadlines


class AgentDirectoryProjection:
    """Maintains `agents`: one row per agent of the directory (listing and routing read it)."""

    name = AGENTS_PROJECTION
    tables: tuple[Table, ...] = (agents,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        agent_id = event.envelope.aggregate_id
        where = agents.c.agent_id == agent_id
        match payload:
            case domain.AgentPut():
                old = connection.execute(agents.select().where(where)).first()
                connection.execute(delete(agents).where(where))
                connection.execute(
                    insert(agents).values(
                        agent_id=agent_id,
                        name=payload.name,
                        team=payload.team,
                        channels=[[c.channel.value, c.capacity] for c in payload.channels],
                        ticket_types=list(payload.ticket_types),
                        languages=list(payload.languages),
                        senior=payload.senior,
                        availability=(
                            old.availability if old else domain.Availability.OFFLINE.value
                        ),
                        version=position,
                    )
                )
            case domain.AgentAvailabilityChanged():
                connection.execute(
                    update(agents)
                    .where(where)
                    .values(availability=payload.availability.value, version=position)
                )


# ----------------------------------------------------------------------------- customer directory
# Customer-profile's events, decoded into just the fields ticketing needs (matched by name).


CUSTOMER_CODEC = view_codec(
    cu.CustomerRegistered, cu.ProfileUpdated, cu.SegmentAssigned, cu.CustomerForgotten
)


class CustomerDirectoryProjection:
    """Keeps `customer_directory`: each customer's computed tier (for the SLA targets of new
    tickets) and contact hashes (to link a ticket opened from a known e-mail or phone).
    An erased customer's row is deleted."""

    name = "customer_directory"
    tables: tuple[Table, ...] = (customer_directory,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        customer_id = event.envelope.aggregate_id
        where = customer_directory.c.customer_id == customer_id
        match payload:
            case cu.CustomerRegistered():
                connection.execute(
                    insert(customer_directory).values(
                        customer_id=customer_id,
                        tier=domain.CustomerTier.REGULAR.value,
                        email_hash=payload.email_hash or None,
                        phone_hash=payload.phone_hash or None,
                        version=position,
                    )
                )
            case cu.ProfileUpdated():
                connection.execute(
                    update(customer_directory)
                    .where(where)
                    .values(
                        email_hash=payload.email_hash or None,
                        phone_hash=payload.phone_hash or None,
                        version=position,
                    )
                )
            case cu.SegmentAssigned(tier=str(tier)):
                connection.execute(
                    update(customer_directory).where(where).values(tier=tier, version=position)
                )
            case cu.CustomerForgotten():
                connection.execute(delete(customer_directory).where(where))


def text_shredder(texts: TextSealer) -> Shredder:
    """The projection erasing a forgotten customer's ticket texts: destroys the key, blanks
    `tickets.subject` and the conversation's subject and body (careops_platform.sealing)."""
    return Shredder(
        "ticket_text_shredder", texts, {tickets: ("subject",), conversation: ("subject", "body")}
    )
