"""Durable projection runner: pull consumer -> SQL rows + checkpoint in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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
from sqlalchemy.orm import Session

from careops_eventstore.codec import DecodedEvent, EventCodec
from careops_eventstore.model import RecordedBatch
from careops_eventstore.sqlstate import checkpoints, insert_for

log = logging.getLogger(__name__)
INACTIVE_THRESHOLD_SECONDS = 300.0
tracer = trace.get_tracer(__name__)

APPLIED = Counter(
    "careops_projection_events_total", "Events applied by projection.", ["projection"]
)
SKIPPED = Counter(
    "careops_projection_skipped_total",
    "Messages skipped by projection and reason (redelivered, unknown_type, undecodable).",
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
    """How far a batch got: the checkpoint after it, poison messages, and whether it hit a gap."""

    last_sequence: int
    poison: list[int]
    gap: bool = False


class _Resync(Exception):
    """Deliveries arrived out of order (a redelivery after a crash): restart from the checkpoint."""


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
) -> BatchOutcome:
    """Applies messages (parsed or raw bytes) and advances the checkpoint in one transaction.

    With `contiguous` (the consumer sees every sequence of the stream), a message beyond
    checkpoint + 1 means an earlier one is still out for redelivery: stop there (gap=True)
    rather than skip it later as already seen.
    """
    poison: list[int] = []
    gap = False
    with engine.begin() as connection:
        _claim_checkpoint(connection, projection.name, stream)
        last = read_checkpoint(connection, projection.name, for_update=True)
        start = last
        for message, sequence in zip(messages, sequences, strict=True):
            if sequence <= last:
                SKIPPED.labels(projection.name, "redelivered").inc()
                continue
            if contiguous and sequence != last + 1:
                gap = True
                break
            batch = _parse(message)
            if batch is None:
                poison.append(sequence)
                SKIPPED.labels(projection.name, "undecodable").inc()
                log.error(
                    "undecodable message skipped",
                    extra={"projection": projection.name, "sequence": sequence},
                )
            else:
                _apply_envelopes(connection, projection, codec, batch, sequence)
            last = sequence
        if last != start:
            connection.execute(
                update(checkpoints)
                .where(checkpoints.c.projection == projection.name)
                .values(last_sequence=last)
            )
    return BatchOutcome(last, poison, gap)


def _parse(message: RecordedBatch | bytes | None) -> EventBatch | None:
    if isinstance(message, RecordedBatch):
        return message.batch
    if message is None:
        return None
    batch = EventBatch()
    try:
        batch.ParseFromString(message)
    except DecodeError:
        return None
    return batch


def _apply_envelopes(
    connection: Connection,
    projection: Projection,
    codec: EventCodec,
    batch: EventBatch,
    sequence: int,
) -> None:
    for envelope in batch.events:
        if not codec.knows(envelope.type):
            SKIPPED.labels(projection.name, "unknown_type").inc()
            continue
        try:
            event = codec.decode(envelope)
        except (DecodeError, LookupError, ValueError):
            SKIPPED.labels(projection.name, "undecodable").inc()
            continue
        projection.apply(connection, DecodedEvent(event, envelope), sequence)
        APPLIED.labels(projection.name).inc()


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
    """Empties the projection's tables and its checkpoint in one transaction."""
    with Session(engine) as session, session.begin():
        for table in projection.tables:
            session.execute(delete(table))
        session.execute(delete(checkpoints).where(checkpoints.c.projection == projection.name))


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
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._engine = engine
        self.projection = projection
        self._codec = codec
        self.stream = stream
        self._filter = filter_subject
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        # Set by stop(): nats-py's fetch can swallow a cancellation that races with an arriving
        # message, so the loops also check this flag (then stop within one idle wait).
        self._stopping = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_ids = itertools.count()
        self.position = 0
        self._instance = uuid.uuid4().hex[:12]

    @property
    def durable(self) -> str:
        """This process's consumer: replicas each read the whole stream and the SQL checkpoint
        lock lets exactly one apply each message; orphans expire after INACTIVE_THRESHOLD."""
        return f"proj-{self.projection.name}-{self._instance}"

    async def start(self) -> None:
        """Loads the checkpoint and starts consuming in the background."""
        self.position = await asyncio.to_thread(self._load_checkpoint)
        POSITION.labels(self.projection.name).set(self.position)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.projection.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def rebuild(self) -> None:
        """Drops the read model and replays the stream from the beginning."""
        await self.stop()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_consumer(self.stream, self.durable)
        await asyncio.to_thread(reset, self._engine, self.projection)
        await self.start()

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
            filter_subject=self._filter,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.position + 1,
            ack_wait=30,
            max_ack_pending=10_000,
            inactive_threshold=INACTIVE_THRESHOLD_SECONDS,
        )
        await self._js.add_consumer(self.stream, config)

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
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _handle(self, messages: list[Msg]) -> None:
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
        if outcome.gap:
            raise _Resync()

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
