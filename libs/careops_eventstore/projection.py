"""Durable projection runner: pull consumer -> SQL rows + checkpoint in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import nats.errors
import nats.js.errors
from careops.events.v1.envelope_pb2 import EventBatch
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Connection, Engine, Table, delete, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from careops_eventstore.codec import DecodedEvent, EventCodec, known_event_type
from careops_eventstore.jetstream import last_sequence_matching
from careops_eventstore.model import ConcurrencyConflict, LogUnavailable, RecordedBatch
from careops_eventstore.sqlstate import ParkedMessage, checkpoints, insert_for, park, unpark_all
from careops_eventstore.tasks import repeat_every, stop_task

log = logging.getLogger(__name__)
INACTIVE_THRESHOLD_SECONDS = 300.0
# Behind and no progress for this long: the projection (or reaction) is reported as stalled.
STALL_AFTER_SECONDS = 60.0
PROBE_INTERVAL_SECONDS = 5.0
tracer = trace.get_tracer(__name__)
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
POSITION = Gauge(
    "careops_projection_position", "Last stream sequence applied by projection.", ["projection"]
)
LAG = Gauge(
    "careops_projection_lag_messages",
    "Messages in the stream not yet applied by projection.",
    ["projection"],
)
STALLED = Gauge(
    "careops_projection_stalled",
    "1 while the projection is behind its stream and has not moved for a minute.",
    ["projection"],
)
BATCH_SECONDS = Histogram(
    "careops_projection_batch_duration_seconds",
    "Time to apply and commit one batch.",
    ["projection"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class Projection(Protocol):
    """A read model fed by one stream; `apply` runs inside the batch transaction."""

    name: str

    @property
    def tables(self) -> Sequence[Table]:
        """The tables this projection owns (emptied by a rebuild)."""

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        """Applies one decoded event at stream sequence `position`."""


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


class _Resync(Exception):
    """A delivery went missing (or arrived out of order): restart from the checkpoint."""


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


def read_checkpoint(session: Session | Connection, name: str, *, for_update: bool = False) -> int:
    """Returns the projection's last applied sequence (0 if none)."""
    query = select(checkpoints.c.last_sequence).where(checkpoints.c.projection == name)
    if for_update:
        query = query.with_for_update()
    return int(session.execute(query).scalar() or 0)


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
    batch = _Batch(projection, codec, stream, messages, sequences, contiguous, subjects)
    try:
        outcome = batch.run(engine, savepoints=False)
    except _NeedsSavepoints:
        # Some apply raised: redo the batch with a savepoint per message, which parks exactly
        # that message. The fast path spares every batch without poison two statements per
        # message.
        outcome = batch.run(engine, savepoints=True)
    batch.publish(outcome)
    return outcome


class _NeedsSavepoints(Exception):
    """A projection's apply raised on the fast path; the batch is redone message by message."""


@dataclass
class _Batch:
    """One batch's input, applied by `run` (possibly twice: see apply_batch)."""

    projection: Projection
    codec: EventCodec
    stream: str
    messages: Sequence[RecordedBatch | bytes | None]
    sequences: Sequence[int]
    contiguous: bool
    subjects: Sequence[str]

    def run(self, engine: Engine, *, savepoints: bool) -> BatchOutcome:
        name = self.projection.name
        outcome = BatchOutcome(0, [])
        with engine.begin() as connection:
            _claim_checkpoint(connection, name, self.stream)
            last = read_checkpoint(connection, name, for_update=True)
            start = last
            for index, (message, sequence) in enumerate(
                zip(self.messages, self.sequences, strict=True)
            ):
                if sequence <= last:
                    outcome.count("redelivered")
                    continue
                if self.contiguous and sequence != last + 1:
                    outcome.gap = True
                    break
                subject = self.subjects[index] if self.subjects else ""
                target = _Target(self.projection, self.stream, sequence, subject, outcome)
                parsed = _parse(message)
                if parsed is None:
                    outcome.poison.append(sequence)
                    target.skip(connection, "undecodable", detail="not an event batch")
                elif not parsed.events:
                    target.skip(connection, "undecodable", detail="empty message")
                else:
                    _apply_message(connection, target, self.codec, parsed, savepoints)
                last = sequence
            if last != start:
                connection.execute(
                    update(checkpoints)
                    .where(checkpoints.c.projection == name)
                    .values(last_sequence=last)
                )
        outcome.last_sequence = last
        return outcome

    def publish(self, outcome: BatchOutcome) -> None:
        """Counts and logs what the committed batch did."""
        name = self.projection.name
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
    connection: Connection,
    target: _Target,
    codec: EventCodec,
    batch: EventBatch,
    savepoints: bool,
) -> None:
    """Applies the events of one message. They are one command's: with `savepoints`, a poison
    event rolls back (and parks) the whole message and the batch goes on; without, it raises
    _NeedsSavepoints (the caller redoes the batch with them)."""
    decoded: list[DecodedEvent] = []
    for envelope in batch.events:
        if not codec.knows(envelope.type):
            if known_event_type(envelope.type):
                target.outcome.count("ignored")
            else:
                target.skip(connection, "unknown_type", event_type=envelope.type)
            continue
        try:
            decoded.append(DecodedEvent(codec.decode(envelope), envelope))
        except (DecodeError, LookupError, ValueError, TypeError) as exc:
            target.skip(connection, "undecodable", event_type=envelope.type, detail=_describe(exc))
            return
    current = ""
    try:
        with connection.begin_nested() if savepoints else contextlib.nullcontext():
            for event in decoded:
                current = event.envelope.type
                target.projection.apply(connection, event, target.sequence)
    except Exception as exc:
        if transient(exc):
            raise
        if not savepoints:
            raise _NeedsSavepoints() from exc
        target.skip(connection, "failed", event_type=current, detail=_describe(exc))
        return
    target.outcome.applied += len(decoded)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _claim_checkpoint(connection: Connection, name: str, stream: str) -> None:
    """Makes sure the checkpoint row exists, as this transaction's first statement.

    The row is what `FOR UPDATE` locks: without it, two replicas could both apply a projection's
    first batch. Writing first also starts SQLite's write transaction before anything is read.
    """
    statement = insert_for(connection.dialect.name)(checkpoints)
    connection.execute(
        statement.values(projection=name, stream=stream, last_sequence=0).on_conflict_do_nothing()
    )


def reset(engine: Engine, projection: Projection) -> None:
    """Empties the projection's tables, checkpoint and parked messages in one transaction."""
    with engine.begin() as connection:
        for table in projection.tables:
            connection.execute(delete(table))
        connection.execute(delete(checkpoints).where(checkpoints.c.projection == projection.name))
        unpark_all(connection, projection.name)


async def fetch_batch(
    subscription: nats.js.JetStreamContext.PullSubscription, size: int, idle_wait: float = 1.0
) -> list[Msg]:
    """Waits up to `idle_wait` for the first message, then takes what else is there at once.

    A single fetch of `size` would wait for the whole batch under a trickle of messages; this
    keeps latency low when idle and batches under load.
    """
    try:
        first = await subscription.fetch(1, timeout=idle_wait)
    except (nats.errors.TimeoutError, TimeoutError):
        return []
    if size <= 1:
        return list(first)
    try:
        rest = await subscription.fetch(size - 1, timeout=0.001)
    except (nats.errors.TimeoutError, TimeoutError):
        rest = []
    return [*first, *rest]


class ProgressWatch:
    """Tells a consumer that is behind and not moving (stalled) from one that is catching up.

    `observe` takes a progress marker (a position that only grows while work gets done) and the
    lag; the consumer is stalled once it has been behind, with the marker unchanged, for
    `stall_after` seconds of `clock`.
    """

    def __init__(
        self, *, stall_after: float = STALL_AFTER_SECONDS, clock: Callable[[], float] | None = None
    ) -> None:
        self._stall_after = stall_after
        self._clock = clock or time.monotonic
        self._marker = -1
        self._since = self._clock()
        self.lag = 0
        self.stalled = False

    def observe(self, marker: int, lag: int) -> bool:
        """Records the marker and lag now; returns whether the consumer is stalled."""
        now = self._clock()
        # Moving, idle, or behind only since this observation (it was idle at the last one).
        if marker != self._marker or lag == 0 or self.lag == 0:
            self._marker, self._since = marker, now
        self.lag = lag
        self.stalled = lag > 0 and now - self._since >= self._stall_after
        return self.stalled


@dataclass(frozen=True)
class ConsumerStatus:
    """What an operator sees of one projection or reaction."""

    name: str
    kind: str  # "projection" or "reaction"
    stream: str
    filter_subject: str
    position: int
    lag: int
    stalled: bool


def pending(info: api.ConsumerInfo) -> int:
    """Returns a consumer's messages not yet delivered or not yet acked."""
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


class ProjectionRunner:
    """Feeds one projection from a durable pull consumer; ack only after the SQL commit."""

    def __init__(
        self,
        *,
        nc: NatsClient,
        engine: Engine,
        projection: Projection,
        codec: EventCodec,
        stream: str,
        filter_subject: str,
        batch_size: int = 256,
        clock: Callable[[], float] | None = None,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._engine = engine
        self.projection = projection
        self._codec = codec
        self.stream = stream
        self.filter_subject = filter_subject
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._probe_interval = probe_interval
        # Set by stop(): nats-py's fetch can swallow a cancellation that races with an arriving
        # message, so the loops also check this flag (then stop within one idle wait).
        self._stopping = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_ids = itertools.count()
        self.position = 0
        # The consumer sequence the next delivery must carry (the server numbers every delivery,
        # redeliveries included, 1, 2, 3, ... for a consumer): a jump means one went missing.
        self._next_delivery = 1
        self._suspect = -1  # the _next_delivery at a probe that saw the server ahead of it
        self._resync_wanted = False
        self.watch = ProgressWatch(clock=clock)
        self._instance = uuid.uuid4().hex[:12]
        name = projection.name
        for reason in SKIP_REASONS:
            SKIPPED.labels(name, reason)
        APPLIED.labels(name)
        LAG.labels(name)
        STALLED.labels(name)
        BATCH_SECONDS.labels(name)

    @property
    def durable(self) -> str:
        """This process's consumer: replicas each read the whole stream and the SQL checkpoint
        lock lets exactly one apply each message; orphans expire after INACTIVE_THRESHOLD."""
        return f"proj-{self.projection.name}-{self._instance}"

    async def start(self) -> None:
        """Loads the checkpoint and starts consuming (and probing the lag) in the background."""
        self.position = await asyncio.to_thread(self._load_checkpoint)
        POSITION.labels(self.projection.name).set(self.position)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.projection.name}")
        self._probe = asyncio.create_task(
            self._probe_loop(), name=f"projection-probe-{self.projection.name}"
        )

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._task, self._probe):
            await stop_task(task)
        self._task = self._probe = None

    async def rebuild(self) -> None:
        """Drops the read model and replays the stream from the beginning."""
        await self.stop()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_consumer(self.stream, self.durable)
        await asyncio.to_thread(reset, self._engine, self.projection)
        await self.start()

    async def target(self) -> int:
        """Returns the stream sequence of the last message this projection reads (its filter's
        last, not the stream's: a filtered projection never sees the others)."""
        return await last_sequence_matching(self._nc, self.stream, self.filter_subject)

    async def wait_for(self, sequence: int, timeout: float) -> bool:
        """Waits until the projection has applied `sequence`; returns False on timeout."""
        if self.position >= sequence:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (sequence, next(self._waiter_ids), future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True

    async def status(self) -> ConsumerStatus:
        """Returns the position, lag (from the log) and stalled flag, probing the lag now."""
        await self._observe()
        return ConsumerStatus(
            name=self.projection.name,
            kind="projection",
            stream=self.stream,
            filter_subject=self.filter_subject,
            position=self.position,
            lag=self.watch.lag,
            stalled=self.watch.stalled,
        )

    async def _observe(self) -> None:
        """Measures the lag: what the consumer still holds, or (with no consumer, e.g. while
        the runner retries) whether the log has anything past the position."""
        try:
            info = await self._js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            lag = int(await self.target() > self.position)
        else:
            lag = pending(info)
            self._check_lost(int(info.delivered.consumer_seq or 0) if info.delivered else 0)
        self.watch.observe(self.position, lag)
        LAG.labels(self.projection.name).set(lag)
        STALLED.labels(self.projection.name).set(int(self.watch.stalled))

    def _check_lost(self, delivered: int) -> None:
        """Asks for a resync when the server has sent deliveries this runner never received, at
        two probes in a row with nothing received in between: the last delivery of a burst,
        lost to a fetch that timed out, would otherwise wait for its redelivery (ack_wait)."""
        missing = delivered >= self._next_delivery
        if missing and self._suspect == self._next_delivery:
            self._resync_wanted = True
        self._suspect = self._next_delivery if missing else -1

    async def _probe_loop(self) -> None:
        await repeat_every(
            self._probe_interval, self._observe, lambda: not self._stopping, "lag probe"
        )

    def _load_checkpoint(self) -> int:
        with Session(self._engine) as session:
            return read_checkpoint(session, self.projection.name)

    async def _ensure_consumer(self) -> None:
        """(Re)creates the durable consumer to deliver from the SQL checkpoint onwards.

        The checkpoint, not the consumer, is the truth: starting from it discards deliveries
        still pending for a crashed process, which would otherwise arrive out of order.
        """
        self.position = await asyncio.to_thread(self._load_checkpoint)
        # Another replica may have applied what a reader waits for: wake it now.
        await self._advance(self.position)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_consumer(self.stream, self.durable)
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.filter_subject,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.position + 1,
            ack_wait=30,
            max_ack_pending=10_000,
            inactive_threshold=INACTIVE_THRESHOLD_SECONDS,
        )
        await self._js.add_consumer(self.stream, config)
        self._next_delivery, self._suspect, self._resync_wanted = 1, -1, False

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._ensure_consumer()
                subscription = await self._js.pull_subscribe_bind(
                    durable=self.durable, stream=self.stream
                )
                await self._consume(subscription)
            except asyncio.CancelledError:
                raise
            except _Resync:
                log.info("resyncing from checkpoint", extra={"projection": self.projection.name})
            except nats.js.errors.NotFoundError:
                # Another context's stream may not exist yet (its service has not started).
                log.debug("waiting for stream %s", self.stream)
                await asyncio.sleep(2.0)
            except Exception:
                log.warning(
                    "projection interrupted; retrying",
                    exc_info=True,
                    extra={"projection": self.projection.name},
                )
                await asyncio.sleep(0.5)

    async def _consume(self, subscription: nats.js.JetStreamContext.PullSubscription) -> None:
        try:
            while not self._stopping:
                messages = await fetch_batch(subscription, self._batch_size)
                if messages:
                    await self._handle(messages)
                if self._resync_wanted:
                    raise _Resync()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def _until_gap(self, messages: list[Msg]) -> tuple[list[Msg], bool]:
        """Returns the deliveries up to a missing one (lost to a fetch that timed out as the
        server sent it, it would come back only as a redelivery after ack_wait, behind later
        messages), and whether one is missing. Stream sequences cannot tell: a filtered
        consumer skips the stream's other subjects."""
        for index, message in enumerate(messages):
            delivered = message.metadata.sequence.consumer
            if delivered > self._next_delivery:
                log.info(
                    "delivery %d missing (got %d); resyncing",
                    self._next_delivery,
                    delivered,
                    extra={"projection": self.projection.name},
                )
                return messages[:index], True
            self._next_delivery = max(self._next_delivery, delivered + 1)
        return messages, False

    async def _handle(self, received: list[Msg]) -> None:
        messages, gap = self._until_gap(received)
        if messages:
            await self._apply(messages)
        if gap:
            raise _Resync()

    async def _apply(self, messages: list[Msg]) -> None:
        sequences = [message.metadata.sequence.stream for message in messages]
        started = time.perf_counter()
        started_ns = time.time_ns()
        outcome = await asyncio.to_thread(
            apply_batch,
            self._engine,
            self.projection,
            self._codec,
            self.stream,
            [message.data for message in messages],
            sequences,
            contiguous=False,
            subjects=[message.subject for message in messages],
        )
        self._trace(messages, started_ns, outcome.last_sequence)
        BATCH_SECONDS.labels(self.projection.name).observe(time.perf_counter() - started)
        for message, sequence in zip(messages, sequences, strict=True):
            if sequence in outcome.poison:
                await message.term()
            elif sequence <= outcome.last_sequence:
                await message.ack()
        LAG.labels(self.projection.name).set(messages[-1].metadata.num_pending)
        await self._advance(outcome.last_sequence)

    def _trace(self, messages: list[Msg], started_ns: int, last: int) -> None:
        """Records one span per applied message in the trace of the command that wrote it."""
        ended_ns = time.time_ns()
        for message in messages:
            sequence = message.metadata.sequence.stream
            if sequence > last or not message.headers or "traceparent" not in message.headers:
                continue
            span = tracer.start_span(
                f"project {self.projection.name}",
                context=propagate.extract(dict(message.headers)),
                start_time=started_ns,
                attributes={"careops.sequence": sequence, "careops.batch_size": len(messages)},
            )
            span.end(end_time=ended_ns)

    async def _advance(self, sequence: int) -> None:
        """Moves the position on and wakes exactly the waiters it satisfies."""
        self.position = max(self.position, sequence)
        POSITION.labels(self.projection.name).set(self.position)
        while self._waiters and self._waiters[0][0] <= self.position:
            _sequence, _id, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
