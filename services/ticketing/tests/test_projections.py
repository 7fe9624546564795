"""Projections on real SQLite and PostgreSQL: exactly-once application, skips, rebuilds."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from careops.events.v1.envelope_pb2 import EventBatch
from careops_eventstore.codec import DecodedEvent, EnvelopeContext
from careops_eventstore.model import RecordedBatch
from careops_eventstore.projection import (
    BatchOutcome,
    Projection,
    apply_batch,
    read_checkpoint,
    reset,
)
from careops_eventstore.sqlstate import timers
from careops_platform.db import migrate
from careops_sla import default_policy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.orm import Session

from tests.support import apply_one_at_a_time, ticket_rows
from ticketing import domain as d
from ticketing.application import CODEC, STREAM
from ticketing.projections import SlaTimerProjection, TicketListProjection
from ticketing.readmodels import (
    _ms,
    clocks_json,
    clocks_to_json,
    tickets,
    waiting_count,
    waiting_tickets,
)

MIGRATIONS = Path(__file__).parents[1] / "migrations"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    migrate(read_model_engine, MIGRATIONS)
    return read_model_engine


def history() -> list[RecordedBatch]:
    """A realistic log: two tickets through several commands, one message per command."""
    policy = default_policy()
    commands: list[tuple[str, d.Command]] = [
        (
            "T-a",
            d.OpenTicket("T-a", "C-1", d.Channel.EMAIL, d.TicketType.FAULT, d.Priority.HIGH, "a"),
        ),
        (
            "T-b",
            d.OpenTicket("T-b", "C-2", d.Channel.CHAT, d.TicketType.RETURN, d.Priority.LOW, "b"),
        ),
        ("T-a", d.AssignTicket("agent-1")),
        ("T-a", d.AddReply(d.Author.AGENT, "agent-1", "hello")),
        ("T-b", d.HoldTicket(d.HoldReason.WAITING_CUSTOMER)),
        ("T-a", d.ChangePriority(d.Priority.URGENT)),
        ("T-a", d.ResolveTicket("done")),
        ("T-a", d.ReopenTicket("again")),
        ("T-b", d.ResumeTicket()),
    ]
    states = {"T-a": d.initial("T-a"), "T-b": d.initial("T-b")}
    log = []
    for sequence, (ticket_id, command) in enumerate(commands, start=1):
        events = d.decide(states[ticket_id], command, now=NOW, policy=policy)
        for event in events:
            states[ticket_id] = d.evolve(states[ticket_id], event, NOW)
        context = EnvelopeContext(ticket_id, "ticket", uuid.uuid4().hex, NOW)
        batch = CODEC.encode(events, context)
        log.append(RecordedBatch(STREAM.name, f"s.{ticket_id}", sequence, batch))
    return log


def skipped(reason: str) -> float:
    labels = {"projection": "tickets", "reason": reason}
    return REGISTRY.get_sample_value("careops_projection_skipped_total", labels) or 0.0


def apply_all(engine: Engine, log: list[RecordedBatch], chunk: int = 3) -> None:
    for start in range(0, len(log), chunk):
        part = log[start : start + chunk]
        for projection in (TicketListProjection(), SlaTimerProjection()):
            apply_batch(engine, projection, CODEC, STREAM.name, part, [m.sequence for m in part])


def test_rows_reflect_the_history(engine: Engine) -> None:
    apply_all(engine, history())
    rows = {row["ticket_id"]: row for row in ticket_rows(engine)}
    assert rows["T-a"]["status"] == "in_progress"
    assert rows["T-a"]["priority"] == "urgent"
    assert rows["T-a"]["assignee_id"] == "agent-1"
    assert rows["T-a"]["reopen_count"] == 1
    assert rows["T-b"]["status"] == "open"
    assert rows["T-b"]["version"] == 9
    with Session(engine) as session:
        assert read_checkpoint(session, "tickets") == 9
        pending = session.execute(select(timers.c.aggregate_id, timers.c.kind)).all()
    # T-a: first response was met, resolution runs again after the reopen; T-b: both resumed.
    assert sorted(pending) == [
        ("T-a", "sla_breach"),
        ("T-a", "sla_warning"),
        ("T-b", "sla_breach"),
        ("T-b", "sla_breach"),
        ("T-b", "sla_warning"),
        ("T-b", "sla_warning"),
    ]


def test_the_queue_count_counts_what_the_queue_lists(engine: Engine) -> None:
    apply_all(engine, history())
    with Session(engine) as session:
        listed = waiting_tickets(session=session, limit=100)
        # T-b: open and unassigned; T-a is assigned (in progress).
        assert [ticket.ticket_id for ticket in listed] == ["T-b"]
        assert waiting_count(session=session) == 1
        # T-b is a return by chat.
        chat = waiting_tickets(session=session, limit=100, kinds=[("return", "chat")])
        assert [ticket.ticket_id for ticket in chat] == ["T-b"]
        others = [("return", "email"), ("fault", "chat"), ("consultation", "phone")]
        assert waiting_tickets(session=session, limit=100, kinds=others) == []


def test_redelivered_messages_are_applied_once(engine: Engine) -> None:
    log = history()
    apply_all(engine, log)
    once = ticket_rows(engine)
    before = skipped("redelivered")
    apply_all(engine, log, chunk=4)  # everything again, as after a crash before the ack
    assert ticket_rows(engine) == once
    assert skipped("redelivered") - before == len(log)


def test_a_gap_stops_the_batch_without_skipping_the_missing_message(engine: Engine) -> None:
    log = history()
    out_of_order = [log[0], log[2]]
    outcome = apply_batch(engine, TicketListProjection(), CODEC, STREAM.name, out_of_order, [1, 3])
    assert outcome.gap and outcome.last_sequence == 1
    apply_all(engine, log)
    assert {row["ticket_id"] for row in ticket_rows(engine)} == {"T-a", "T-b"}


def test_unknown_types_and_garbage_are_skipped_and_counted(engine: Engine) -> None:
    log = history()[:1]
    unknown = EventBatch()
    unknown.events.add(type="careops.ticketing.v9.FromTheFuture", aggregate_id="T-a")
    garbage = b"\xff\xfe not protobuf"
    before = skipped("unknown_type")
    outcome = apply_batch(
        engine,
        TicketListProjection(),
        CODEC,
        STREAM.name,
        [log[0], unknown.SerializeToString(), garbage],
        [1, 2, 3],
    )
    assert outcome.last_sequence == 3 and outcome.poison == [3]
    assert skipped("unknown_type") - before == 1
    assert [row["ticket_id"] for row in ticket_rows(engine)] == ["T-a"]


def test_reset_then_replay_equals_the_original(engine: Engine) -> None:
    log = history()
    apply_all(engine, log)
    original = ticket_rows(engine)
    reset(engine, TicketListProjection())
    assert ticket_rows(engine) == []
    with Session(engine) as session:
        assert read_checkpoint(session, "tickets") == 0
    apply_all(engine, log, chunk=2)
    assert ticket_rows(engine) == original


class FirstApplyHeld:
    """The ticket list projection, but its first `apply` waits (inside the transaction) until
    released: a replica caught in the middle of the projection's very first batch."""

    name = "tickets"

    def __init__(self) -> None:
        self.inner = TicketListProjection()
        self.inside = threading.Event()
        self.release = threading.Event()

    @property
    def tables(self) -> Sequence[Table]:
        return self.inner.tables

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        if not self.inside.is_set():
            self.inside.set()
            self.release.wait(10)
        self.inner.apply(connection, event, position)


def test_two_replicas_racing_the_first_batch_apply_it_once_without_errors(engine: Engine) -> None:
    first = history()[:1]
    held = FirstApplyHeld()
    outcomes: dict[str, BatchOutcome] = {}
    errors: list[BaseException] = []

    def replica(name: str, projection: Projection) -> None:
        try:
            outcomes[name] = apply_batch(engine, projection, CODEC, STREAM.name, first, [1])
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    a = threading.Thread(target=replica, args=("a", held))
    b = threading.Thread(target=replica, args=("b", TicketListProjection()))
    a.start()
    assert held.inside.wait(10)
    b.start()
    b.join(0.3)  # b is now waiting for a's checkpoint row (or has not started: same outcome)
    held.release.set()
    a.join(10)
    b.join(10)
    assert errors == []
    assert outcomes["a"].last_sequence == outcomes["b"].last_sequence == 1
    (row,) = ticket_rows(engine)
    assert row["ticket_id"] == "T-a" and row["version"] == 1
    assert skipped("redelivered") >= 1


def test_the_clocks_are_stored_as_json_dumps_writes_them() -> None:
    """The ticket list encodes its clocks itself: the text json.dumps gives the same dicts."""
    snapshots = [
        event.sla.clocks
        for message in history()
        for event in (CODEC.decode(envelope) for envelope in message.batch.events)
        if getattr(event, "sla", None) is not None
    ]
    assert len(snapshots) > 5
    # Every kind of value: set and unset times, each flag on and off.
    flags = {
        (clock.running, clock.paused, clock.warned, clock.breached, clock.met)
        for clocks in snapshots
        for clock in clocks
    }
    assert len(flags) > 2
    assert any(clock.stopped_at for clocks in snapshots for clock in clocks)
    for clocks in snapshots:
        assert clocks_json(clocks) == json.dumps(clocks_to_json(clocks))
        assert json.loads(clocks_json(clocks)) == clocks_to_json(clocks)


@pytest.mark.parametrize(
    "value",
    [
        timedelta(0),
        timedelta(microseconds=999),
        timedelta(milliseconds=1),
        timedelta(hours=4, microseconds=4_413_999),
        timedelta(days=400, seconds=3, microseconds=1),
        -timedelta(microseconds=1),
        -timedelta(milliseconds=1, microseconds=500),
        -timedelta(days=2, seconds=7),
    ],
)
def test_milliseconds_of_a_duration_are_what_division_truncates(value: timedelta) -> None:
    assert _ms(value) == int(value / timedelta(milliseconds=1))


def test_stored_clocks_read_back_as_they_were(engine: Engine) -> None:
    """Written encoded, read as JSON (on PostgreSQL too): each ticket's last clocks."""
    log = history()
    apply_all(engine, log)
    last: dict[str, list[dict[str, object]]] = {}
    for message in log:
        for envelope in message.batch.events:
            event = CODEC.decode(envelope)
            if getattr(event, "sla", None) is not None:
                last[envelope.aggregate_id] = clocks_to_json(event.sla.clocks)
    with engine.connect() as connection:
        result = connection.execute(select(tickets.c.ticket_id, tickets.c.sla))
        stored = {ticket_id: sla for ticket_id, sla in result}
    assert stored == last and len(last) == 2


# Every kind of change the ticket list records (each of its UPDATE statements), for any ticket.
LATER_COMMANDS: tuple[d.Command, ...] = (
    d.AssignTicket("agent-1"),
    d.AssignTicket("agent-2"),
    d.AddReply(d.Author.AGENT, "agent-1", "on it"),
    d.AddReply(d.Author.AGENT, "agent-1", "a note", internal=True),
    d.AddReply(d.Author.CUSTOMER, "C-1", "any news?"),
    d.ChangePriority(d.Priority.URGENT),
    d.ChangePriority(d.Priority.LOW),
    d.EscalateTicket("stuck"),
    d.HoldTicket(d.HoldReason.WAITING_CUSTOMER),
    d.ResumeTicket(),
    d.ResolveTicket("done"),
    d.ReopenTicket("again"),
    d.CloseTicket(),
    d.FireSlaTimer(d.SlaClock.FIRST_RESPONSE, d.SlaTimerKind.BREACH),
    d.FireSlaTimer(d.SlaClock.RESOLUTION, d.SlaTimerKind.WARNING),
    d.ReturnToQueue("agent-1"),
    d.GrantCompensation("comp-1", d.CompensationKind.REFUND, "10.00", "CNY", "sorry"),
    d.ApproveCompensation("comp-1", limit=Decimal(1000)),
    d.RejectCompensation("comp-1", "no"),
)


def log_of(steps: Sequence[tuple[int, int]]) -> list[RecordedBatch]:
    """Two tickets opened, then `steps` (ticket, index into LATER_COMMANDS), an hour apart, one
    message per accepted command (a refused one appends nothing, as in the service)."""
    policy = default_policy()
    openings = [
        d.OpenTicket("T-0", "C-1", d.Channel.EMAIL, d.TicketType.FAULT, d.Priority.HIGH, "a"),
        d.OpenTicket("T-1", "C-2", d.Channel.CHAT, d.TicketType.RETURN, d.Priority.LOW, "b"),
    ]
    commands: list[tuple[int, d.Command]] = list(enumerate(openings))
    commands += [(ticket, LATER_COMMANDS[which]) for ticket, which in steps]
    states = [d.initial("T-0"), d.initial("T-1")]
    log: list[RecordedBatch] = []
    for hour, (ticket, command) in enumerate(commands):
        now = NOW + timedelta(hours=hour)
        try:
            events = d.decide(states[ticket], command, now=now, policy=policy)
        except d.TicketError:
            continue
        if not events:
            continue
        for event in events:
            states[ticket] = d.evolve(states[ticket], event, now)
        context = EnvelopeContext(f"T-{ticket}", "ticket", uuid.uuid4().hex, now)
        batch = CODEC.encode(events, context)
        log.append(RecordedBatch(STREAM.name, f"s.T-{ticket}", len(log) + 1, batch))
    return log


# Every kind of change at least once: T-1 is assigned, handed back, assigned again, breaches
# (no reply in its first hours) and gets a compensation approved; T-0 goes through
# replies, priority, escalation, hold, resume, resolve, reopen and close.
EVERY_CHANGE = [(1, 0), (1, 15), (1, 1), (1, 13), (1, 14), (1, 16), (1, 17)]
EVERY_CHANGE += [(0, 0), (0, 2), (0, 3), (0, 4), (0, 5), (0, 7), (0, 8), (0, 9), (0, 10), (0, 11)]
EVERY_CHANGE += [(1, 2), (1, 10), (1, 12)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(steps=EVERY_CHANGE)
@example(steps=[(0, 0), (0, 2)])  # a reply to an assigned ticket, the last word
@example(steps=[(0, 2), (1, 0), (1, 9)])  # a reply to an open one; resuming what is not held
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, len(LATER_COMMANDS) - 1)), max_size=14
    )
)
def test_batched_rows_equal_one_event_at_a_time_for_any_history(
    engine: Engine, steps: list[tuple[int, int]]
) -> None:
    """The ticket list's writes grouped into one executemany per kind (the whole log in one
    batch, or pages of three) store the rows that every event applied at once with its own
    statement stores, whatever the history: every kind of change, in any order."""
    log = log_of(steps)
    projection = TicketListProjection()
    reset(engine, projection)
    apply_one_at_a_time(engine, projection, CODEC, log)
    expected = ticket_rows(engine)
    for page in (len(log), 3):
        reset(engine, projection)
        for start in range(0, len(log), page):
            part = log[start : start + page]
            apply_batch(engine, projection, CODEC, STREAM.name, part, [m.sequence for m in part])
        assert ticket_rows(engine) == expected, f"pages of {page}"
