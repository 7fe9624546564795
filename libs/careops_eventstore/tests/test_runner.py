"""The projection runner's poison handling, gap detection and stall detection, without a service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from careops.events.v1.envelope_pb2 import EventBatch
from careops.ticketing.v1 import events_pb2
from nats.aio.msg import Msg
from prometheus_client import REGISTRY
from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, create_engine, select
from sqlalchemy.exc import OperationalError

from careops_eventstore.codec import DecodedEvent, EnvelopeContext, EventCodec
from careops_eventstore.model import EVENT_TYPE_HEADER
from careops_eventstore.projection import (
    SKIP_REASONS,
    ProgressWatch,
    ProjectionGroup,
    ProjectionRunner,
    apply_batch,
    read_checkpoint,
    reset,
)
from careops_eventstore.reactions import OUTCOMES, ReactionRunner
from careops_eventstore.sqlstate import list_parked
from careops_eventstore.sqlstate import metadata as shared_metadata


@dataclass(frozen=True)
class Closed:
    """A domain event carried by TicketClosed (only its note)."""

    note: str


CODEC = EventCodec({Closed: events_pb2.TicketClosed})
own = MetaData()
notes = Table("test_notes", own, Column("note", String(50), primary_key=True))


class Notes:
    """Writes each note; "poison" fails after writing (the data is wrong), "dup" makes the
    database refuse a duplicate key (also the data), "db-down" fails as the database would when
    unreachable (transient)."""

    name = "notes"

    @property
    def tables(self) -> Sequence[Table]:
        return [notes]

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        connection.execute(notes.insert().values(note=f"{event.event.note}@{position}"))
        if event.event.note == "dup":
            connection.execute(notes.insert().values(note=f"{event.event.note}@{position}"))
        if event.event.note == "poison":
            raise ValueError("no such channel")
        if event.event.note == "db-down":
            raise OperationalError("INSERT", {}, Exception("connection refused"))


@pytest.fixture
def engine(read_model_engine: Engine) -> Engine:
    shared_metadata.create_all(read_model_engine)
    own.create_all(read_model_engine)
    return read_model_engine


def message(note: str) -> bytes:
    context = EnvelopeContext("T-1", "ticket", uuid.uuid4().hex, datetime(2026, 1, 1, tzinfo=UTC))
    return CODEC.encode([Closed(note)], context).SerializeToString()


def rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(notes.c.note)).scalars())


def skipped(name: str, reason: str) -> float | None:
    labels = {"projection": name, "reason": reason}
    return REGISTRY.get_sample_value("careops_projection_skipped_total", labels)


def applied(name: str) -> float:
    labels = {"projection": name}
    return REGISTRY.get_sample_value("careops_projection_events_total", labels) or 0.0


def test_an_apply_that_raises_is_rolled_back_parked_and_the_batch_goes_on(engine: Engine) -> None:
    before, applied_before = skipped("notes", "failed") or 0.0, applied("notes")
    batch = [message("a"), message("poison"), message("b"), message("dup"), message("c")]
    outcome = apply_batch(engine, Notes(), CODEC, "S", batch, [1, 2, 3, 4, 5])
    assert outcome.last_sequence == 5 and outcome.parked == [2, 4]
    assert rows(engine) == ["a@1", "b@3", "c@5"]  # the poison's own writes are rolled back
    with engine.connect() as connection:
        parked = sorted(list_parked(connection, consumers=["notes"]), key=lambda p: p.sequence)
        assert read_checkpoint(connection, "notes") == 5
    assert [(p.sequence, p.reason, p.stream) for p in parked] == [
        (2, "failed", "S"),
        (4, "failed", "S"),
    ]
    assert parked[0].event_type == "careops.ticketing.v1.TicketClosed"
    assert "ValueError" in parked[0].detail and "IntegrityError" in parked[1].detail
    # Counted once, though the batch ran twice (fast, then with a savepoint per message).
    assert (skipped("notes", "failed") or 0.0) - before == 2
    assert applied("notes") - applied_before == 3
    reset(engine, Notes())  # a rebuild parks it again: the old row goes with the read model
    with engine.connect() as connection:
        assert list_parked(connection, consumers=["notes"]) == []


def test_a_transient_database_error_retries_the_whole_batch(engine: Engine) -> None:
    applied_before = applied("notes")
    with pytest.raises(OperationalError):
        apply_batch(engine, Notes(), CODEC, "S", [message("a"), message("db-down")], [1, 2])
    assert rows(engine) == []
    with engine.connect() as connection:
        assert read_checkpoint(connection, "notes") == 0
        assert list_parked(connection) == []
    assert applied("notes") == applied_before  # nothing committed, nothing counted


def test_empty_and_unknown_messages_are_parked_and_known_unmapped_types_ignored(
    engine: Engine,
) -> None:
    unknown, foreign = EventBatch(), EventBatch()
    unknown.events.add(type="careops.ticketing.v9.FromTheFuture")
    foreign.events.add(type="careops.incident.v1.IncidentDeclared")  # real, just not mapped here
    ignored = skipped("notes", "ignored") or 0.0
    outcome = apply_batch(
        engine,
        Notes(),
        CODEC,
        "S",
        [b"", unknown.SerializeToString(), foreign.SerializeToString(), message("a")],
        [1, 2, 3, 4],
        subjects=["s.1", "s.2", "s.3", "s.4"],
    )
    assert outcome.last_sequence == 4 and outcome.parked == [1, 2]
    with engine.connect() as connection:
        parked = list_parked(connection, consumers=["notes"])
    assert sorted((item.sequence, item.reason, item.subject) for item in parked) == [
        (1, "undecodable", "s.1"),
        (2, "unknown_type", "s.2"),
    ]
    assert (skipped("notes", "ignored") or 0.0) - ignored == 1
    assert rows(engine) == ["a@4"]


def delivery(stream: int, consumer: int) -> Msg:
    """A JetStream delivery as nats-py builds it: its reply subject names the sequences."""
    reply = f"$JS.ACK.S.proj-notes.1.{stream}.{consumer}.1764720000000000000.0"
    return Msg(_client=None, subject="ticketing.ticket.T-1", reply=reply)  # type: ignore[arg-type]


def runner(name: str = "notes") -> ProjectionGroup:
    nc: Any = SimpleNamespace(jetstream=lambda: None)
    return ProjectionRunner(
        nc=nc,
        engine=create_engine("sqlite://"),
        projection=Notes() if name == "notes" else _named(name),
        codec=CODEC,
        stream="S",
        filter_subject="s.one.>",
    ).group


def _named(name: str) -> Any:
    projection = Notes()
    projection.name = name
    return projection


def test_a_filtered_consumer_skipping_stream_sequences_is_no_gap() -> None:
    """The stream interleaves other subjects (2, 7, 9): deliveries 1, 2, 3 are complete."""
    feed = runner()
    messages = [delivery(2, 1), delivery(7, 2), delivery(9, 3)]
    assert feed._until_gap(messages) == (messages, False)


def test_a_missing_delivery_is_a_gap_and_redeliveries_are_numbered_on() -> None:
    """nats-server numbers every delivery, redeliveries included (checked against 2.15.1: a
    message nak'd as delivery 2 comes back as delivery 5): a jump means one was lost."""
    feed = runner()
    first = [delivery(2, 1), delivery(7, 2)]
    assert feed._until_gap(first) == (first, False)
    later = [delivery(7, 3), delivery(12, 5), delivery(13, 6)]  # delivery 4 never arrived
    assert feed._until_gap(later) == (later[:1], True)


def test_a_lost_last_delivery_is_noticed_at_the_second_probe_not_after_ack_wait() -> None:
    feed = runner()
    feed._until_gap([delivery(2, 1), delivery(7, 2)])
    feed._check_lost(2)  # the server sent 2 deliveries; both arrived
    feed._check_lost(3)  # a third is out: in flight, or lost
    assert not feed._resync_wanted
    feed._until_gap([delivery(9, 3)])  # it arrived
    feed._check_lost(4)
    assert not feed._resync_wanted
    feed._check_lost(4)  # the fourth still has not, a probe later: lost
    assert feed._resync_wanted


def test_behind_without_progress_is_stalled_after_the_threshold() -> None:
    now = [100.0]
    watch = ProgressWatch(stall_after=60.0, clock=lambda: now[0])
    assert not watch.observe(5, lag=3)
    now[0] += 59.0
    assert not watch.observe(5, lag=3)
    now[0] += 1.0
    assert watch.observe(5, lag=3)  # a minute behind at 5
    assert not watch.observe(6, lag=2)  # it moved
    now[0] += 120.0
    assert not watch.observe(6, lag=0)  # caught up: idle is not stalled
    now[0] += 120.0
    assert not watch.observe(6, lag=1)  # new work arrived just now
    now[0] += 60.0
    assert watch.observe(6, lag=1) and watch.stalled and watch.lag == 1


def test_every_label_combination_exists_before_anything_happens() -> None:
    name = f"fresh_{uuid.uuid4().hex[:6]}"
    runner(name)
    for reason in SKIP_REASONS:
        assert skipped(name, reason) == 0.0
    for metric in ("careops_projection_lag_messages", "careops_projection_stalled"):
        assert REGISTRY.get_sample_value(metric, {"projection": name}) == 0.0
    nc: Any = SimpleNamespace(jetstream=lambda: None)

    async def handle(_message: Any) -> None: ...

    reaction = f"react_{uuid.uuid4().hex[:6]}"
    ReactionRunner(
        nc=nc,
        engine=create_engine("sqlite://"),
        name=reaction,
        stream="S",
        filter_subject="s.>",
        handle=handle,
    )
    for outcome in OUTCOMES:
        labels = {"reaction": reaction, "outcome": outcome}
        assert REGISTRY.get_sample_value("careops_reaction_messages_total", labels) == 0.0
    assert REGISTRY.get_sample_value("careops_reaction_stalled", {"reaction": reaction}) == 0.0


def test_a_reaction_passes_messages_of_no_type_it_reacts_to_without_reading_them() -> None:
    nc: Any = SimpleNamespace(jetstream=lambda: None)

    async def handle(_message: Any) -> None: ...

    reaction = ReactionRunner(
        nc=nc,
        engine=create_engine("sqlite://"),
        name=f"react_{uuid.uuid4().hex[:6]}",
        stream="S",
        filter_subject="s.>",
        handle=handle,
        event_types=frozenset({"careops.ticketing.v1.TicketOpened"}),
    )

    def named(types: str | None) -> Any:
        return SimpleNamespace(headers=None if types is None else {EVENT_TYPE_HEADER: types})

    assert reaction._passes(named("careops.ticketing.v1.TicketAssigned"))
    assert not reaction._passes(
        named("careops.ticketing.v1.TicketAssigned,careops.ticketing.v1.TicketOpened")
    )
    assert not reaction._passes(named(None))  # no header: read and handled (or parked) as ever
