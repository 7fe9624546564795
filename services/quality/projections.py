"""Quality projections: ticket facts and SLA timelines (ticketing stream), incidents (incident
stream), surveys and follow-up timers (own stream)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from careops_eventstore.codec import DecodedEvent, from_timestamp
from careops_eventstore.rows import rows
from careops_eventstore.sqlstate import aware, insert_for, timers
from careops_eventstore.timers import DueTimer, cancel, schedule
from careops_platform.sealing import Shredder, TextSealer
from careops_published import incident as inc
from careops_published import ticketing as tk
from sqlalchemy import Connection, Table, bindparam, insert, select, update

from quality import domain as d
from quality.readmodels import (
    FIRST_RESPONSE_BUCKETS,
    FIRST_RESPONSE_LE,
    FOLLOW_UP_DONE,
    FOLLOW_UP_NONE,
    FOLLOW_UP_OVERDUE,
    FOLLOW_UP_PENDING,
    PAUSE_CLOCKS,
    RECOMPLAINT_DAYS,
    RESOLUTION_BUCKETS,
    RESOLUTION_LE,
    compensations,
    complaints,
    customer_emotions,
    holds,
    hour_of,
    incidents,
    survey_answers,
    surveys,
    ticket_buckets,
    ticket_totals,
    tickets,
    timeline,
)


def _seconds(start: Any, end: datetime) -> float:
    begin = aware(start)
    assert begin is not None
    return (end - begin).total_seconds()


def _clocks(sla: tk.SlaSnapshot | None) -> dict[str, tk.SlaClockSnapshot]:
    """Returns the clocks of an event's SLA snapshot by name (none without one)."""
    return {clock.clock: clock for clock in sla.clocks if clock.clock} if sla else {}


class _Row(dict[str, Any]):
    """A row as the projection last wrote (or read) it: by column name, as an item or an
    attribute (like a SQLAlchemy Row)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# The KPI facts' statements, built once; the rows and keys are parameters (careops_eventstore.rows
# sends them as one executemany per kind). An UPDATE sets the columns its parameters name.
_INSERT_TICKET = insert(tickets)
_UPDATE_TICKET = update(tickets).where(tickets.c.ticket_id == bindparam("b_ticket"))
_INSERT_STEP = insert(timeline)
_INSERT_EMOTION = insert(customer_emotions)
_INSERT_HOLD = insert(holds)
_UPDATE_HOLD = update(holds).where(holds.c.sequence == bindparam("b_sequence"))
_INSERT_COMPLAINT = insert(complaints)
_UPDATE_COMPLAINT = update(complaints).where(complaints.c.ticket_id == bindparam("b_ticket"))
_INSERT_COMPENSATION = insert(compensations)
# Remembered: the ticket has no hold open (ticketing holds a ticket only while it is not on
# hold, so at most one is open at a time).
_NO_HOLD = _Row()
_INSERT_INCIDENT = insert(incidents)
_UPDATE_INCIDENT = update(incidents).where(incidents.c.incident_id == bindparam("b_incident"))
_INSERT_SURVEY = insert(surveys)
_UPDATE_SURVEY = update(surveys).where(surveys.c.ticket_id == bindparam("b_ticket"))
_INSERT_ANSWER = insert(survey_answers)


class TicketFactsProjection:
    """Maintains quality_tickets (one row of KPI facts per ticket) and quality_sla_timeline.

    Every write goes through careops_eventstore.rows, keyed by the row it touches; a ticket's row
    and its open hold are remembered as written (`remember`), so its next event in the batch
    reads them from there, and only a complaint's look-back across tickets flushes first."""

    name = "quality_tickets"
    batched_writes = True
    tables: tuple[Table, ...] = (
        tickets,
        timeline,
        ticket_buckets,
        ticket_totals,
        compensations,
        customer_emotions,
        complaints,
        holds,
    )

    def __init__(self) -> None:
        # (ticket, sequence) of the last timeline step and its position: the events of one
        # message arrive one after another, so this numbers their steps in order. After a
        # rolled-back batch the numbers may start higher; they stay unique and ordered.
        self._last: tuple[str, int, int] = ("", 0, -1)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        envelope = event.envelope
        if envelope.aggregate_type != "ticket":
            return
        ticket_id = envelope.aggregate_id
        at = from_timestamp(envelope.occurred_at)
        if isinstance(payload, tk.TicketOpened):
            opened: dict[str, Any] = {
                "ticket_id": ticket_id,
                "customer_id": payload.customer_id,
                "channel": payload.channel or "",
                "type": payload.type or "",
                "priority": payload.priority or "",
                "tier": payload.tier or "regular",
                "agent_id": "",
                "opened_at": at,
                "resolved": False,
                "closed": False,
                "reopen_count": 0,
                "escalated": False,
                "first_response_breached": False,
                "breaches": 0,
                "handle_seconds": 0.0,
                "active_since": at,
                "version": position,
                "sla_policy_version": payload.sla_policy_version
                or envelope.policy_versions.get("sla_policy", ""),
            }
            writer = rows(connection)
            writer.write(_INSERT_TICKET, opened, key=ticket_id)
            row_after = _Row({column.name: opened.get(column.name) for column in tickets.columns})
            writer.remember((tickets.name, ticket_id), row_after)
            writer.remember((holds.name, ticket_id), _NO_HOLD)
            move_contribution(connection, None, row_after)
            self._step(connection, ticket_id, position, at, d.Step.OPENED, opened["priority"])
            self._emotion(connection, row_after, payload, at, position)
            if opened["type"] == "complaint":
                self._complaint_opened(connection, opened)
            return
        row = _ticket(connection, ticket_id)
        if row is None:
            return
        self._emotion(connection, row, payload, at, position)
        self._hold(connection, row, envelope.actor, payload, at, position)
        if row.type == "complaint":
            self._complaint(connection, row, payload, at)
        changes = self._changes(connection, row, payload, at, position)
        changes["version"] = position
        writer = rows(connection)
        writer.write(_UPDATE_TICKET, {**changes, "b_ticket": ticket_id}, key=ticket_id)
        after = _Row({**row, **changes})
        writer.remember((tickets.name, ticket_id), after)
        move_contribution(connection, row, after)

    def _changes(
        self, connection: Connection, row: Any, payload: Any, at: datetime, position: int
    ) -> dict[str, Any]:
        ticket_id = row.ticket_id
        step = self._step
        match payload:
            case tk.TicketAssigned():
                return {"agent_id": payload.agent_id}
            # The first response is the agent reply that stops the first-response clock:
            # before the first resolution (which stops it unanswered), as in careops_sla.
            case tk.ReplyAdded(author="agent", internal=False) if (
                row.first_response_at is None and row.first_resolved_at is None
            ):
                step(connection, ticket_id, position, at, d.Step.AGENT_REPLY)
                return {
                    "first_response_at": at,
                    "first_response_seconds": _seconds(row.opened_at, at),
                    "first_response_on_time": not row.first_response_breached,
                }
            case tk.PriorityChanged():
                priority = payload.to_priority or row.priority
                step(connection, ticket_id, position, at, d.Step.PRIORITY, priority)
                return {"priority": priority}
            case tk.TicketEscalated():
                return {"escalated": True}
            case tk.TicketHeld():
                # Every hold with its reason: a replay pauses for the reasons its policy names.
                if payload.reason or payload.clocks_paused:
                    step(connection, ticket_id, position, at, d.Step.PAUSED, payload.reason or "")
                return self._halt(row, at)
            case tk.SlaPolicyApplied():
                step(connection, ticket_id, position, at, d.Step.POLICY, payload.sla_policy_version)
                return {}
            case tk.TicketResumed():
                step(connection, ticket_id, position, at, d.Step.RESUMED)
                return {"active_since": at} if not row.resolved else {}
            case tk.TicketResolved():
                step(connection, ticket_id, position, at, d.Step.RESOLVED)
                changes = {**self._halt(row, at), "resolved": True}
                if row.first_resolved_at is None:
                    changes.update(
                        first_resolved_at=at,
                        resolution_seconds=_seconds(row.opened_at, at),
                        first_contact=payload.first_contact,
                    )
                return changes
            case tk.TicketReopened():
                step(connection, ticket_id, position, at, d.Step.REOPENED)
                return {
                    "resolved": False,
                    "reopen_count": row.reopen_count + 1,
                    "active_since": at,
                }
            case tk.TicketClosed():
                return {"closed": True, "resolved": True, **self._halt(row, at)}
            case tk.CompensationGranted() | tk.CompensationApproved():
                self._granted(connection, row, payload, at)
                return {}
            case tk.SlaBreached():
                changes = {"breaches": row.breaches + 1}
                if payload.clock == "first_response":
                    changes["first_response_breached"] = True
                return changes
        return {}

    @staticmethod
    def _emotion(
        connection: Connection, row: Any, payload: Any, at: datetime, position: int
    ) -> None:
        """Records the emotion of a customer message (the opening or a customer reply)."""
        emotion = getattr(payload, "emotion", None)
        if emotion is None or not isinstance(payload, tk.TicketOpened | tk.ReplyAdded):
            return
        rows(connection).write(
            _INSERT_EMOTION,
            {
                "ticket_id": row["ticket_id"],
                "sequence": position,
                "at": at,
                "agent_id": row["agent_id"] or "",
                "channel": row["channel"],
                "type": row["type"],
                "priority": row["priority"],
                "emotion": emotion,
            },
            key=row["ticket_id"],
        )

    @staticmethod
    def _hold(
        connection: Connection, row: Any, actor: str, payload: Any, at: datetime, position: int
    ) -> None:
        """Records a hold as it begins (who, why, what it did to each clock, the ticket's
        dimensions) and as it ends (resumed, or resolved while held): how long it paused each
        clock, in business time, as ticketing's snapshot on the ending event says."""
        h = holds
        if isinstance(payload, tk.TicketHeld):
            values: dict[str, Any] = {
                "sequence": position,
                "ticket_id": row.ticket_id,
                "held_by": actor,
                "reason": payload.reason or "",
                "pausing": payload.clocks_paused,
                "held_at": at,
                "ended_by": "",
                "agent_id": row.agent_id or "",
                "channel": row.channel,
                "type": row.type,
                "priority": row.priority,
            }
            snapshots = _clocks(payload.sla)
            for name in PAUSE_CLOCKS:
                clock = snapshots.get(name)
                state = (
                    d.clock_at_hold(
                        target=clock.target,
                        consumed=clock.consumed,
                        paused=clock.paused,
                        breached=clock.breached,
                    )
                    if clock is not None
                    else d.ClockAtHold(paused=False, share=None, before_breach=False)
                )
                values[f"{name}_paused"] = state.paused
                values[f"{name}_share"] = state.share
                values[f"{name}_before_breach"] = state.before_breach
                values[f"{name}_paused_seconds"] = None if state.paused else 0.0
            writer = rows(connection)
            writer.write(_INSERT_HOLD, values, key=position)
            writer.remember((h.name, row.ticket_id), _Row(values))
            return
        if not isinstance(payload, tk.TicketResumed | tk.TicketResolved | tk.TicketClosed):
            return
        held = _open_hold(connection, row.ticket_id)
        if held is None:
            return
        ended = {tk.TicketResumed: "resumed", tk.TicketResolved: "resolved"}
        changes: dict[str, Any] = {"ended_at": at, "ended_by": ended.get(type(payload), "closed")}
        snapshots = _clocks(getattr(payload, "sla", None))
        for name in PAUSE_CLOCKS:
            clock = snapshots.get(name)
            if getattr(held, f"{name}_paused"):
                # Unset on events before issue 13: the paused time stays unknown (None).
                spent = clock.paused_for if clock is not None else None
                changes[f"{name}_paused_seconds"] = (
                    spent.total_seconds() if spent is not None else None
                )
        writer = rows(connection)
        writer.write(_UPDATE_HOLD, {**changes, "b_sequence": held.sequence}, key=held.sequence)
        writer.remember((h.name, row.ticket_id), _NO_HOLD)

    @staticmethod
    def _complaint_opened(connection: Connection, opened: dict[str, Any]) -> None:
        """Adds a complaint's KPI row; a re-complaint when the customer complained lately."""
        c = complaints
        since = opened["opened_at"] - timedelta(days=RECOMPLAINT_DAYS)
        # Other tickets' complaints are read: what is buffered goes to the database first.
        rows(connection).flush()
        earlier = connection.execute(
            select(c.c.ticket_id)
            .where(c.c.customer_id == opened["customer_id"], c.c.opened_at >= since)
            .limit(1)
        ).first()
        keys = ("ticket_id", "customer_id", "agent_id", "channel", "type", "priority", "opened_at")
        values = {key: opened[key] for key in keys}
        values["recomplaint"] = earlier is not None
        rows(connection).write(_INSERT_COMPLAINT, values, key=opened["ticket_id"])

    @staticmethod
    def _complaint(connection: Connection, row: Any, payload: Any, at: datetime) -> None:
        """Updates a complaint's KPI row: acknowledged, followed up (on time or not), reopened."""
        changes: dict[str, Any] = {}
        match payload:
            case tk.TicketAssigned():
                changes = {"agent_id": payload.agent_id}
            case tk.ComplaintStepRecorded(step="listen"):
                changes = {
                    "acknowledged_at": at,
                    "acknowledge_seconds": _seconds(row.opened_at, at),
                }
            case tk.ComplaintStepRecorded(step="solve"):
                changes = {"follow_up_due_at": payload.follow_up_at}
            case tk.ComplaintStepRecorded(step="follow_up"):
                changes = {"follow_up_on_time": not payload.late}
            case tk.ComplaintFollowUpMissed():
                changes = {"follow_up_on_time": False}
            case tk.TicketReopened():
                changes = {"recomplaint": True}
        if changes:
            parameters = {**changes, "b_ticket": row.ticket_id}
            rows(connection).write(_UPDATE_COMPLAINT, parameters, key=row.ticket_id)

    @staticmethod
    def _granted(connection: Connection, row: Any, payload: Any, at: datetime) -> None:
        """Records a grant, direct or approved, for the agent who granted or asked for it."""
        by = payload.granted_by if isinstance(payload, tk.CompensationGranted) else ""
        rows(connection).write(
            _INSERT_COMPENSATION,
            {
                "compensation_id": payload.compensation_id,
                "ticket_id": row.ticket_id,
                "agent_id": by or getattr(payload, "requested_by", ""),
                "channel": row.channel,
                "type": row.type,
                "priority": row.priority,
                "kind": payload.kind or "",
                "currency": payload.currency,
                "amount_cents": int(Decimal(payload.amount) * 100),
                "granted_at": at,
            },
            key=payload.compensation_id,
        )

    @staticmethod
    def _halt(row: Any, at: datetime) -> dict[str, Any]:
        """Adds the running handling segment to handle_seconds."""
        if row.active_since is None:
            return {}
        return {
            "handle_seconds": row.handle_seconds + _seconds(row.active_since, at),
            "active_since": None,
        }

    def _step(
        self,
        connection: Connection,
        ticket_id: str,
        position: int,
        at: datetime,
        step: d.Step,
        value: str = "",
    ) -> None:
        last_ticket, last_sequence, last_index = self._last
        same = (last_ticket, last_sequence) == (ticket_id, position)
        index = last_index + 1 if same else 0
        self._last = (ticket_id, position, index)
        rows(connection).write(
            _INSERT_STEP,
            {
                "ticket_id": ticket_id,
                "sequence": position,
                "position": index,
                "at": at,
                "step": step.value,
                "value": str(value),
            },
            key=ticket_id,
        )


def _ticket(connection: Connection, ticket_id: str) -> _Row | None:
    """The ticket's KPI row: as last written in this batch, else from the database (none of
    its writes is buffered then: each is remembered)."""
    row = rows(connection).recall((tickets.name, ticket_id))
    if row is not None:
        return row  # type: ignore[no-any-return]
    found = connection.execute(select(tickets).where(tickets.c.ticket_id == ticket_id)).first()
    return _Row(found._mapping) if found is not None else None


def _open_hold(connection: Connection, ticket_id: str) -> _Row | None:
    """The ticket's open hold (its latest not ended), remembered or from the database."""
    remembered = rows(connection).recall((holds.name, ticket_id))
    if remembered is not None:
        return remembered or None  # type: ignore[no-any-return]
    h = holds
    found = connection.execute(
        select(h)
        .where(h.c.ticket_id == ticket_id, h.c.ended_by == "")
        .order_by(h.c.sequence.desc())
        .limit(1)
    ).first()
    return _Row(found._mapping) if found is not None else None


class IncidentFactsProjection:
    """Maintains quality_incidents: level, drill flag and response times per incident (writes
    batched, each incident's row remembered as written: see TicketFactsProjection)."""

    name = "quality_incidents"
    tables: tuple[Table, ...] = (incidents,)
    batched_writes = True

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        envelope = event.envelope
        if envelope.aggregate_type != "incident":
            return
        incident_id = envelope.aggregate_id
        at = from_timestamp(envelope.occurred_at)
        writer = rows(connection)
        memo = (incidents.name, incident_id)
        if isinstance(payload, inc.IncidentDeclared):
            declared = {
                "incident_id": incident_id,
                "level": (payload.level or "").upper(),
                "drill": payload.drill,
                "declared_at": at,
            }
            writer.write(_INSERT_INCIDENT, declared, key=incident_id)
            writer.remember(memo, _Row({c.name: declared.get(c.name) for c in incidents.columns}))
            return
        row: _Row | None = writer.recall(memo)
        if row is None:
            found = connection.execute(
                select(incidents).where(incidents.c.incident_id == incident_id)
            ).first()
            if found is None:
                return
            row = _Row(found._mapping)
        changes: dict[str, Any] = {}
        match payload:
            case inc.IncidentReassessed() | inc.IncidentEscalated():
                changes = {"level": (payload.to_level or row.level).upper()}
            # An acknowledgement after the resolution acknowledged nothing: not in MTTA.
            case inc.PageAcknowledged() if row.acknowledged_at is None and row.resolved_at is None:
                changes = {
                    "acknowledged_at": at,
                    "acknowledge_seconds": _seconds(row.declared_at, at),
                }
            case inc.IncidentResolved() if row.resolved_at is None:
                changes = {"resolved_at": at, "resolve_seconds": _seconds(row.declared_at, at)}
        if changes:
            writer.write(_UPDATE_INCIDENT, {**changes, "b_incident": incident_id}, key=incident_id)
            writer.remember(memo, _Row({**row, **changes}))


class SurveyProjection:
    """Maintains quality_surveys, including each follow-up's status (writes batched, nothing
    read back)."""

    name = "quality_surveys"
    tables: tuple[Table, ...] = (surveys, survey_answers)
    batched_writes = True

    def __init__(self, texts: TextSealer | None = None) -> None:
        self._texts = texts

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        # The comment and note opened (blocking key read: apply runs in a worker thread);
        # empty once the customer is erased.
        payload = (
            self._texts.open(event.event, connection.get_transaction())
            if self._texts
            else event.event
        )
        ticket_id = event.envelope.aggregate_id
        at = from_timestamp(event.envelope.occurred_at)
        match payload:
            case d.SurveySubmitted():
                submitted = {
                    "ticket_id": ticket_id,
                    "customer_id": payload.customer_id,
                    "agent_id": payload.agent_id,
                    "channel": payload.channel,
                    "type": payload.ticket_type,
                    "priority": payload.priority,
                    "csat": payload.csat,
                    "nps": payload.nps if payload.has_nps else None,
                    "comment": payload.comment,
                    "emotion": payload.emotion.value,
                    "emotion_score": payload.emotion_score,
                    "submitted_at": payload.submitted_at,
                    "ticket_opened_at": payload.ticket_opened_at,
                    "follow_up_required": payload.follow_up_required,
                    "follow_up_due_at": payload.follow_up_due_at,
                    "follow_up_status": FOLLOW_UP_PENDING
                    if payload.follow_up_required
                    else FOLLOW_UP_NONE,
                    "note": "",
                    "sequence": position,
                    "version": position,
                }
                rows(connection).write(_INSERT_SURVEY, submitted, key=ticket_id)
                self._answers(connection, ticket_id, payload)
                return
            case d.FollowUpOverdue():
                changes: dict[str, Any] = {"follow_up_status": FOLLOW_UP_OVERDUE}
            case d.FollowUpRecorded():
                changes = {"follow_up_status": FOLLOW_UP_DONE, "done_at": at, "note": payload.note}
            case _:
                return
        parameters = {**changes, "version": position, "b_ticket": ticket_id}
        rows(connection).write(_UPDATE_SURVEY, parameters, key=ticket_id)

    @staticmethod
    def _answers(connection: Connection, ticket_id: str, payload: d.SurveySubmitted) -> None:
        """Keeps the scored and yes/no answers (open text stays in the comment only)."""
        answers = [
            {
                "ticket_id": ticket_id,
                "question_id": answer.question_id,
                "template_id": payload.template_id,
                "template_version": payload.template_version,
                "kind": answer.kind.value,
                "score": None if answer.kind is d.QuestionKind.YES_NO else answer.score,
                "yes": answer.yes if answer.kind is d.QuestionKind.YES_NO else None,
            }
            for answer in payload.answers
            if answer.kind is not d.QuestionKind.OPEN_TEXT
        ]
        if answers:
            rows(connection).write_all(_INSERT_ANSWER, answers, key=ticket_id)


def follow_up_timer_id(ticket_id: str) -> str:
    return f"quality.{ticket_id}.follow_up"


class FollowUpTimerProjection:
    """Keeps each pending follow-up's due time in `timers`."""

    name = "quality_follow_up_timers"
    tables: tuple[Table, ...] = (timers,)

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        ticket_id = event.envelope.aggregate_id
        match payload:
            case d.SurveySubmitted(follow_up_required=True):
                assert payload.follow_up_due_at is not None
                schedule(
                    connection,
                    DueTimer(
                        follow_up_timer_id(ticket_id),
                        ticket_id,
                        "follow_up",
                        payload.follow_up_due_at,
                        {},
                    ),
                )
            case d.FollowUpOverdue() | d.FollowUpRecorded():
                cancel(connection, follow_up_timer_id(ticket_id))


# ----------------------------------------------------------------------------- incremental sums
# The ticket projection keeps quality_ticket_buckets / _totals as running sums of each ticket's
# contribution, so KPI queries and scrapes read a few rows instead of every ticket.


def contribution(row: Mapping[str, Any]) -> dict[str, float]:
    """Returns what one ticket row adds to the sums of CONTRIBUTIONS and the histograms."""
    resolved_once = row["first_resolved_at"] is not None
    first_response = row["first_response_seconds"]
    resolution = row["resolution_seconds"]
    values: dict[str, float] = {
        "opened": 1,
        "resolved_once": resolved_once,
        "backlog": not row["resolved"],
        # Solved at first contact: a reopened ticket was not (docs/kpis.md).
        "first_contact": resolved_once and bool(row["first_contact"]) and not row["reopen_count"],
        "first_responses": row["first_response_at"] is not None,
        "first_response_total": first_response or 0.0,
        "resolution_total": resolution or 0.0,
        "handle_total": row["handle_seconds"] if row["resolved"] else 0.0,
        "resolved_now": bool(row["resolved"]),
        "on_time": bool(row["first_response_on_time"]),
        "breaches": row["breaches"],
        "escalated": bool(row["escalated"]),
        "reopened": resolved_once and row["reopen_count"] > 0,
        "unanswered_breaches": bool(row["first_response_breached"])
        and row["first_response_at"] is None,
    }
    for name, bound in zip(FIRST_RESPONSE_LE, FIRST_RESPONSE_BUCKETS, strict=True):
        values[name] = first_response is not None and first_response <= bound
    for name, bound in zip(RESOLUTION_LE, RESOLUTION_BUCKETS, strict=True):
        values[name] = resolution is not None and resolution <= bound
    return {name: float(value) for name, value in values.items()}


@cache
def _add_statement(dialect: str, table: Table) -> Any:
    statement = insert_for(dialect)(table)
    keys = [column.name for column in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={
            column.name: column + statement.excluded[column.name]
            for column in table.columns
            if column.name not in keys
        },
    )


def _add(
    connection: Connection, table: Table, key: dict[str, Any], values: dict[str, float]
) -> None:
    row = {**key, **{c.name: values.get(c.name, 0.0) for c in table.columns if c.name not in key}}
    # Additions to one sum keep their order (one key): the float sum is the rebuild's.
    statement = _add_statement(connection.dialect.name, table)
    rows(connection).write(statement, row, key=tuple(key.values()))


def move_contribution(
    connection: Connection, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> None:
    """Replaces a ticket's old contribution to the bucket and total sums by its new one."""
    new = contribution(after)
    for table, keys in ((ticket_buckets, _bucket_key), (ticket_totals, _total_key)):
        key_after = keys(after)
        if before is None:
            _add(connection, table, key_after, new)
            continue
        old = contribution(before)
        key_before = keys(before)
        if key_before == key_after:
            delta = {name: new[name] - old[name] for name in new if new[name] != old[name]}
            if delta:
                _add(connection, table, key_after, delta)
            continue
        _add(connection, table, key_before, {name: -value for name, value in old.items()})
        _add(connection, table, key_after, new)


def _bucket_key(row: Mapping[str, Any]) -> dict[str, Any]:
    opened = aware(row["opened_at"])
    return {"hour": hour_of(opened), "channel": row["channel"], "priority": row["priority"]}


def _total_key(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"channel": row["channel"], "priority": row["priority"]}


def text_shredder(texts: TextSealer) -> Shredder:
    """The projection erasing a forgotten customer's survey texts: destroys the key, blanks
    the surveys' comment and follow-up note (careops_platform.sealing)."""
    return Shredder("survey_text_shredder", texts, {surveys: ("comment", "note")})
