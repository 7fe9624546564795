"""Applying a batch of log messages to a projection: its rows and checkpoint in one SQL
transaction, poison counted and parked beside it (the projection runner feeds it)."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import nats.errors
import nats.js.errors
from careops.events.v1.envelope_pb2 import EventBatch, EventEnvelope
from google.protobuf.message import DecodeError
from prometheus_client import Counter
from sqlalchemy import Connection, Engine, Table, bindparam, delete, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from careops_eventstore.causes import caused_by
from careops_eventstore.codec import DecodedEvent, EventCodec, known_event_type
from careops_eventstore.model import ConcurrencyConflict, LogUnavailable, RecordedBatch
from careops_eventstore.rows import StatementBatch, batching, rows
from careops_eventstore.sqlstate import ParkedMessage, checkpoints, insert_for, park, unpark_all

# Poison is logged under the runner's logger, as before this module was split out of it.
log = logging.getLogger("careops_eventstore.projection")
# Why a message (or one event in it) was not applied; every reason is exported from the start.
# ignored: a CareOps event this projection's codec does not map (normal); unknown_type: a type
# no context defines (a newer producer); undecodable: not an event batch, empty, or a payload
# that does not decode; failed: the projection's apply raised for it. All but redelivered and
# ignored are parked.
SKIP_REASONS = ("redelivered", "ignored", "unknown_type", "undecodable", "failed")

APPLIED = Counter(
    "careops_projection_events_total", "Events applied by projection.", ["projection"]
)
SKIPPED = Counter(
    "careops_projection_skipped_total",
    "Messages (or events) skipped by projection and reason "
    "(redelivered, ignored, unknown_type, undecodable, failed).",
    ["projection", "reason"],
)


class Projection(Protocol):
    """A read model fed by one stream; `apply` runs inside the batch transaction."""

    name: str

    @property
    def tables(self) -> Sequence[Table]:
        """The tables this projection owns (emptied by a rebuild)."""

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        """Applies one decoded event at stream sequence `position`.

        A projection may also define `committed(engine)`, called after each batch commits
        (e.g. to truncate SQLite's WAL after blanking erased text), and `batched_writes = True`
        when it writes its rows through careops_eventstore.rows only (and flushes before it
        reads them back): its writes are then buffered and sent per kind."""


@dataclass
class BatchOutcome:
    """How far a batch got: the checkpoint after it, poison messages, and whether it hit a gap.

    `poison` lists the sequences of messages that were not event batches at all (terminated);
    `parked` the sequences parked for any reason (those are acked: their skip is recorded).
    """

    last_sequence: int
    poison: list[int]
    gap: bool = False
    parked: list[int] = field(default_factory=list)
    applied: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    parked_messages: list[ParkedMessage] = field(default_factory=list)

    def count(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


TRANSIENT = (
    DBAPIError,
    LogUnavailable,
    ConcurrencyConflict,
    OSError,
    TimeoutError,
    nats.errors.Error,
)


def transient(exc: BaseException) -> bool:
    """True for failures worth retrying (database or log unreachable, busy, conflicting); False
    for errors the data itself causes, which retrying cannot fix (the message is poison)."""
    if isinstance(exc, IntegrityError | DataError):
        return False
    return isinstance(exc, TRANSIENT)


@dataclass(frozen=True)
class _CheckpointStatements:
    """The statements every batch runs on its checkpoint row, built once per dialect.

    SQLAlchemy reuses a statement's compiled form by its cache key, which it memoizes on the
    statement object: a statement built anew for every batch is built and hashed again each
    time. Built per batch, the three cost half of a one-message batch's CPU in SQLite (508 µs
    then, 247 µs now: docs/benchmarks.md §16, session 29), the batch a live worker applies."""

    claim: Executable
    read: Executable
    read_for_update: Executable
    advance: Executable


@functools.cache
def _checkpoint_statements(dialect: str) -> _CheckpointStatements:
    read = select(checkpoints.c.last_sequence).where(
        checkpoints.c.projection == bindparam("projection")
    )
    return _CheckpointStatements(
        claim=insert_for(dialect)(checkpoints)
        .values(projection=bindparam("projection"), stream=bindparam("stream"), last_sequence=0)
        .on_conflict_do_nothing(),
        read=read,
        read_for_update=read.with_for_update(),
        # An UPDATE reserves its columns' names for its SET values.
        advance=update(checkpoints)
        .where(checkpoints.c.projection == bindparam("name"))
        .values(last_sequence=bindparam("last")),
    )


def _statements(connection: Session | Connection) -> _CheckpointStatements:
    bind = connection if isinstance(connection, Connection) else connection.get_bind()
    return _checkpoint_statements(bind.dialect.name)


def read_checkpoint(session: Session | Connection, name: str, *, for_update: bool = False) -> int:
    """Returns the projection's last applied sequence (0 if none)."""
    statements = _statements(session)
    query = statements.read_for_update if for_update else statements.read
    return int(session.execute(query, {"projection": name}).scalar() or 0)


def apply_batch(
    engine: Engine,
    projection: Projection,
    codec: EventCodec,
    stream: str,
    messages: Sequence[RecordedBatch | bytes | None],
    sequences: Sequence[int],
    *,
    contiguous: bool = True,
    subjects: Sequence[str] = (),
) -> BatchOutcome:
    """Applies messages (parsed or raw bytes) and advances the checkpoint in one transaction.

    With `contiguous` (the caller feeds every sequence of the stream, unfiltered), a message
    beyond checkpoint + 1 means an earlier one is missing: stop there (gap=True) rather than
    skip it later as already seen. The runner reads a filtered consumer, so it checks the
    consumer's delivery sequence instead and passes contiguous=False.

    Poison never stops the batch: a message that is not an event batch, an event type nobody
    defines, a payload that does not decode, or an event whose `apply` raises is counted,
    logged and parked in this same transaction. A transient error (the database) propagates:
    the whole batch is retried. Metrics and logs are published only once the batch commits.
    """
    (outcome,) = apply_batches(
        engine,
        [projection],
        codec,
        stream,
        messages,
        sequences,
        contiguous=contiguous,
        subjects=subjects,
    )
    return outcome


def apply_batches(
    engine: Engine,
    projections: Sequence[Projection],
    codec: EventCodec,
    stream: str,
    messages: Sequence[RecordedBatch | bytes | None],
    sequences: Sequence[int],
    *,
    contiguous: bool = True,
    subjects: Sequence[str] = (),
) -> list[BatchOutcome]:
    """`apply_batch` for several projections of one stream in one transaction: each message is
    parsed and each event decoded once, then applied to every projection past its own
    checkpoint. Returns one outcome per projection, in order."""
    batch = _Batch(projections, codec, stream, messages, sequences, contiguous, subjects)
    try:
        outcomes = batch.run(engine, savepoints=False)
    except _NeedsSavepoints:
        # Some apply raised: redo the batch with a savepoint per message, which parks exactly
        # that message. The fast path spares every batch without poison two statements per
        # message.
        outcomes = batch.run(engine, savepoints=True)
    for projection, outcome in zip(projections, outcomes, strict=True):
        _publish(projection.name, outcome)
        # A projection that erased data scrubs the database files once that is committed.
        committed = getattr(projection, "committed", None)
        if committed is not None:
            committed(engine)
    return outcomes


class _NeedsSavepoints(Exception):
    """A projection's apply raised on the fast path; the batch is redone message by message."""


@dataclass(frozen=True)
class _Undecodable:
    """An event of a known type whose payload did not decode."""

    event_type: str
    detail: str


# What one envelope of a message decodes to, for every projection of the batch (same codec).
_Decoded = DecodedEvent | _Undecodable | str  # str: "ignored" or the unknown type's name


@dataclass
class _Batch:
    """One batch's input, applied by `run` (possibly twice: see apply_batches). Messages are
    parsed and decoded once, however many projections and runs there are."""

    projections: Sequence[Projection]
    codec: EventCodec
    stream: str
    messages: Sequence[RecordedBatch | bytes | None]
    sequences: Sequence[int]
    contiguous: bool
    subjects: Sequence[str]
    _parsed: list[EventBatch | None] = field(default_factory=list)
    _decoded: dict[int, list[_Decoded]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._parsed = [_parse(message) for message in self.messages]

    def run(self, engine: Engine, *, savepoints: bool) -> list[BatchOutcome]:
        with engine.begin() as connection:
            return [
                self._run_one(connection, projection, savepoints) for projection in self.projections
            ]

    def _run_one(
        self, connection: Connection, projection: Projection, savepoints: bool
    ) -> BatchOutcome:
        name = projection.name
        outcome = BatchOutcome(0, [])
        _claim_checkpoint(connection, name, self.stream)
        last = read_checkpoint(connection, name, for_update=True)
        start = last
        if getattr(projection, "batched_writes", False):
            # Its row writes go out as one executemany per kind (careops_eventstore.rows): at
            # the end on the fast path, after each message with savepoints.
            with batching(connection) as buffer:
                last = self._apply_messages(connection, projection, outcome, last, savepoints)
                _flush(buffer, savepoints)
        else:
            last = self._apply_messages(connection, projection, outcome, last, savepoints)
        if last != start:
            connection.execute(_statements(connection).advance, {"name": name, "last": last})
        outcome.last_sequence = last
        return outcome

    def _apply_messages(
        self,
        connection: Connection,
        projection: Projection,
        outcome: BatchOutcome,
        last: int,
        savepoints: bool,
    ) -> int:
        """Applies the messages past checkpoint `last` to one projection; returns the new
        checkpoint."""
        for index, (parsed, sequence) in enumerate(zip(self._parsed, self.sequences, strict=True)):
            if sequence <= last:
                outcome.count("redelivered")
                continue
            if self.contiguous and sequence != last + 1:
                outcome.gap = True
                break
            subject = self.subjects[index] if self.subjects else ""
            target = _Target(projection, self.stream, sequence, subject, outcome)
            if parsed is None:
                outcome.poison.append(sequence)
                target.skip(connection, "undecodable", detail="not an event batch")
            elif not parsed.events:
                target.skip(connection, "undecodable", detail="empty message")
            else:
                _apply_message(connection, target, self._decode(index, parsed), savepoints)
            last = sequence
        return last

    def _decode(self, index: int, batch: EventBatch) -> list[_Decoded]:
        """The events of message `index`, decoded on first use."""
        if index not in self._decoded:
            self._decoded[index] = [_decode_envelope(self.codec, item) for item in batch.events]
        return self._decoded[index]


def _decode_envelope(codec: EventCodec, envelope: EventEnvelope) -> _Decoded:
    if not codec.knows(envelope.type):
        return "ignored" if known_event_type(envelope.type) else envelope.type
    try:
        return DecodedEvent(codec.decode(envelope), envelope)
    except (DecodeError, LookupError, ValueError, TypeError) as exc:
        return _Undecodable(envelope.type, _describe(exc))


def _publish(name: str, outcome: BatchOutcome) -> None:
    """Counts and logs what the committed batch did for projection `name`."""
    if outcome.applied:
        APPLIED.labels(name).inc(outcome.applied)
    for reason, count in outcome.skipped.items():
        SKIPPED.labels(name, reason).inc(count)
    for item in outcome.parked_messages:
        log.error(
            "poison message parked",
            extra={
                "projection": name,
                "stream": item.stream,
                "sequence": item.sequence,
                "reason": item.reason,
                "event_type": item.event_type,
            },
        )


@dataclass
class _Target:
    """One message being applied: where it is, and the outcome it adds to."""

    projection: Projection
    stream: str
    sequence: int
    subject: str
    outcome: BatchOutcome

    def skip(
        self, connection: Connection, reason: str, *, event_type: str = "", detail: str = ""
    ) -> None:
        """Counts a skipped message (or event) and parks it (beside the checkpoint)."""
        parked = ParkedMessage(
            consumer=self.projection.name,
            stream=self.stream,
            sequence=self.sequence,
            reason=reason,
            subject=self.subject,
            event_type=event_type,
            detail=detail,
        )
        park(connection, parked)
        self.outcome.count(reason)
        self.outcome.parked_messages.append(parked)
        if self.sequence not in self.outcome.parked:
            self.outcome.parked.append(self.sequence)


def _parse(message: RecordedBatch | bytes | None) -> EventBatch | None:
    if isinstance(message, RecordedBatch):
        return None if message.undecodable else message.batch
    if message is None:
        return None
    batch = EventBatch()
    try:
        batch.ParseFromString(message)
    except DecodeError:
        return None
    return batch


def _apply_message(
    connection: Connection, target: _Target, events: Sequence[_Decoded], savepoints: bool
) -> None:
    """Applies the events of one message. They are one command's: with `savepoints`, a poison
    event rolls back (and parks) the whole message and the batch goes on; without, it raises
    _NeedsSavepoints (the caller redoes the batch with them)."""
    decoded: list[DecodedEvent] = []
    for event in events:
        if isinstance(event, DecodedEvent):
            decoded.append(event)
        elif isinstance(event, _Undecodable):
            target.skip(connection, "undecodable", event_type=event.event_type, detail=event.detail)
            return
        elif event == "ignored":
            target.outcome.count("ignored")
        else:
            target.skip(connection, "unknown_type", event_type=event)
    current = ""
    try:
        with connection.begin_nested() if savepoints else contextlib.nullcontext():
            for item in decoded:
                current = item.envelope.type
                # Timers the projection schedules remember whose event scheduled them.
                with caused_by(item.envelope.actor):
                    target.projection.apply(connection, item, target.sequence)
            if savepoints:
                # Inside the savepoint: a write that fails parks this message, not the batch.
                rows(connection).flush()
    except Exception as exc:
        if transient(exc):
            raise
        if not savepoints:
            raise _NeedsSavepoints() from exc
        # Rolled back with its savepoint: what it buffered (and remembered) goes with it.
        buffer = rows(connection)
        if isinstance(buffer, StatementBatch):
            buffer.discard()
        target.skip(connection, "failed", event_type=current, detail=_describe(exc))
        return
    target.outcome.applied += len(decoded)


def _flush(buffer: StatementBatch, savepoints: bool) -> None:
    """Runs the projection's buffered writes. On the fast path a write the data refuses means
    some message is poison: the batch is redone with savepoints, which finds it."""
    try:
        buffer.flush()
    except Exception as exc:
        if transient(exc) or savepoints:
            raise
        raise _NeedsSavepoints() from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _claim_checkpoint(connection: Connection, name: str, stream: str) -> None:
    """Makes sure the checkpoint row exists, as this transaction's first statement.

    The row is what `FOR UPDATE` locks: without it, two replicas could both apply a projection's
    first batch. Writing first also starts SQLite's write transaction before anything is read.
    """
    connection.execute(_statements(connection).claim, {"projection": name, "stream": stream})


def reset(engine: Engine, projection: Projection) -> None:
    """Empties the projection's tables, checkpoint and parked messages in one transaction."""
    with engine.begin() as connection:
        for table in projection.tables:
            connection.execute(delete(table))
        connection.execute(delete(checkpoints).where(checkpoints.c.projection == projection.name))
        unpark_all(connection, projection.name)
