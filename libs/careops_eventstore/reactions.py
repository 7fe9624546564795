"""Reaction runner: a durable pull consumer whose messages trigger side effects or commands.

Replicas share one durable consumer (each message goes to one of them). Each message is handled
in its own task, so a slow side effect never holds back the next message; it is acked when its
handler succeeds and redelivered (after a short delay) when it fails transiently (the log or a
database unreachable, a conflict). The consumer's ack_wait is short (ACK_WAIT_SECONDS, the
default of the services' CAREOPS_REACTION_ACK_WAIT_SECONDS) and a message still being handled
is kept with "in progress" every quarter of it: a delivery lost to an outage (a nak that reached
no consumer leader, a fetch abandoned between leaders) comes back within seconds, not after half
a minute. Poison never comes back: a message that is not an
event batch, or whose handler raises anything else (the data is wrong, retrying cannot help), is
counted, logged, parked in the service's `parked_messages` table and terminated. Handlers must be
idempotent: derive command ids from the source event, check state before side effects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from careops.events.v1.envelope_pb2 import EventBatch
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge
from sqlalchemy import Engine

from careops_eventstore.causes import caused_by
from careops_eventstore.codec import known_event_type
from careops_eventstore.model import EVENT_TYPE_HEADER, LogUnavailable, RecordedBatch
from careops_eventstore.projection import (
    ConsumerStatus,
    ProgressWatch,
    fetch_batch,
    pending,
    transient,
)
from careops_eventstore.sqlstate import ParkedMessage, park
from careops_eventstore.tasks import repeat_every, stop_task

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

HANDLED = Counter(
    "careops_reaction_messages_total",
    "Messages handled by reaction and outcome (handled; failed: will be retried; "
    "parked: poison, skipped for good and listed by `careops projections parked`; "
    "passed: none of the event types the reaction reacts to, acked unread).",
    ["reaction", "outcome"],
)
OUTCOMES = ("handled", "failed", "parked", "passed")
LAG = Gauge(
    "careops_reaction_lag_messages",
    "Messages of the stream not yet handled (or still being retried) by reaction.",
    ["reaction"],
)
STALLED = Gauge(
    "careops_reaction_stalled",
    "1 while the reaction is behind its stream and has finished no message for a minute.",
    ["reaction"],
)
PROBE_INTERVAL_SECONDS = 5.0
# Redelivery of a message neither acked nor kept in progress: the bound on how long a delivery
# lost to a NATS outage waits (the cluster test waited 26 s of a 30 s ack_wait).
ACK_WAIT_SECONDS = 5.0

Handler = Callable[[RecordedBatch], Awaitable[None]]


class ReactionRunner:
    """Feeds every message of `filter_subject` to `handle`, concurrently, at least once."""

    def __init__(
        self,
        *,
        nc: NatsClient,
        engine: Engine,
        name: str,
        stream: str,
        filter_subject: str,
        handle: Handler,
        concurrency: int = 32,
        ack_wait_seconds: float = ACK_WAIT_SECONDS,
        retry_delay_seconds: float = 1.0,
        clock: Callable[[], float] | None = None,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
        event_types: frozenset[str] = frozenset(),
    ) -> None:
        self._js = nc.jetstream()
        self._engine = engine
        self.name = name
        self.stream = stream
        self.filter_subject = filter_subject
        self._handle = handle
        # The types `handle` reacts to (empty: all). A message whose CareOps-Event-Type header
        # names none of them is acked unparsed; one without the header is handled as usual.
        self._event_types = event_types
        self._slots = asyncio.Semaphore(concurrency)
        self._ack_wait = ack_wait_seconds
        self._retry_delay = retry_delay_seconds
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._probe_interval = probe_interval
        self._inflight: set[asyncio.Task[None]] = set()
        # Messages being handled (by id: a Msg is unhashable), kept in progress by the keep-alive.
        self._handling: dict[int, Msg] = {}
        self._keep_alive: asyncio.Task[None] | None = None
        # As in ProjectionRunner: a cancellation nats-py's fetch swallows must not keep it going.
        self._stopping = False
        self.watch = ProgressWatch(clock=clock)
        self._finished = 0  # messages this process handled or parked
        for outcome in OUTCOMES:
            HANDLED.labels(name, outcome)
        LAG.labels(name)
        STALLED.labels(name)

    @property
    def durable(self) -> str:
        return f"react-{self.name}"

    def start(self) -> None:
        """Starts consuming (and probing the lag) in the background."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"reaction-{self.name}")
        self._probe = asyncio.create_task(self._probe_loop(), name=f"reaction-probe-{self.name}")
        self._keep_alive = asyncio.create_task(
            self._keep_alive_loop(), name=f"reaction-keep-alive-{self.name}"
        )

    async def stop(self) -> None:
        self._stopping = True
        for background in (self._task, self._probe, self._keep_alive):
            await stop_task(background)
        self._task = self._probe = self._keep_alive = None
        for task in list(self._inflight):
            await stop_task(task)

    async def status(self) -> ConsumerStatus:
        """Returns the ack floor, lag (from the log) and stalled flag, probing them now."""
        position = await self._observe()
        return ConsumerStatus(
            name=self.name,
            kind="reaction",
            stream=self.stream,
            filter_subject=self.filter_subject,
            position=position,
            lag=self.watch.lag,
            stalled=self.watch.stalled,
        )

    async def _observe(self) -> int:
        """Measures the shared consumer (all replicas); returns its ack floor."""
        try:
            info = await self._js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            self.watch.observe(0, 0)
            return 0
        except (TimeoutError, nats.errors.Error) as exc:
            # A clustered stream between leaders: the lag is unknown, not an internal error.
            raise LogUnavailable("the event log (NATS) did not answer; lag unknown") from exc
        lag = pending(info)
        floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        # Progress: the shared ack floor moved, or this replica finished a message (one slow
        # message holds the floor while the others are handled; that is not a stall).
        self.watch.observe(floor + self._finished, lag)
        LAG.labels(self.name).set(lag)
        STALLED.labels(self.name).set(int(self.watch.stalled))
        return floor

    async def _probe_loop(self) -> None:
        await repeat_every(
            self._probe_interval, self._observe, lambda: not self._stopping, "lag probe"
        )

    async def _keep_alive_loop(self) -> None:
        await repeat_every(
            self._ack_wait / 4, self._in_progress, lambda: not self._stopping, "keep-alive"
        )

    async def _in_progress(self) -> None:
        """Tells the server that each message being handled is still being worked on (resets
        its ack_wait): a slow handler is not redelivered to another replica meanwhile."""
        for message in list(self._handling.values()):
            await message.in_progress()

    async def _ensure_consumer(self) -> None:
        """Creates the shared consumer if it is missing, and gives one created with another
        ack_wait (a release before the keep-alive had 30 s) this runner's, in place."""
        try:
            info = await self._js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            info = None
        # Compared to the millisecond: the server keeps nanoseconds, and int(0.3 * 1e9) is not
        # 0.3 seconds again.
        if info is not None and abs((info.config.ack_wait or 0) - self._ack_wait) < 0.001:
            return
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.filter_subject,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self._ack_wait,
            max_ack_pending=10_000,
        )
        await self._js.add_consumer(self.stream, config)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._ensure_consumer()
                subscription = await self._js.pull_subscribe_bind(
                    durable=self.durable, stream=self.stream
                )
                while not self._stopping:
                    for message in await fetch_batch(subscription, 64):
                        if self._passes(message):
                            HANDLED.labels(self.name, "passed").inc()
                            self._finished += 1
                            await message.ack()
                            continue
                        await self._slots.acquire()
                        task = asyncio.create_task(self._one(message))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
            except asyncio.CancelledError:
                raise
            except nats.js.errors.NotFoundError:
                # The stream of another context may not exist yet; it will.
                log.debug("waiting for stream %s", self.stream, extra={"reaction": self.name})
                await asyncio.sleep(2.0)
            except Exception:
                log.warning(
                    "reaction interrupted; retrying", exc_info=True, extra={"reaction": self.name}
                )
                await asyncio.sleep(1.0)

    def _passes(self, message: Msg) -> bool:
        """Whether the message holds none of the event types this reaction reacts to."""
        if not self._event_types:
            return False
        named = (message.headers or {}).get(EVENT_TYPE_HEADER)
        return named is not None and self._event_types.isdisjoint(named.split(","))

    async def _one(self, message: Msg) -> None:
        self._handling[id(message)] = message
        try:
            recorded = _recorded(self.stream, message)
            if recorded is None:
                await self._park(message, "undecodable", "", "not an event batch, or empty")
                return
            types = [envelope.type for envelope in recorded.batch.events]
            if not any(known_event_type(name) for name in types):
                await self._park(message, "unknown_type", ",".join(types), "")
                return
            try:
                await self._traced(recorded)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not transient(exc):
                    await self._park(
                        message, "failed", ",".join(types), f"{type(exc).__name__}: {exc}"
                    )
                    return
                HANDLED.labels(self.name, "failed").inc()
                log.warning(
                    "reaction failed; will retry",
                    exc_info=True,
                    extra={"reaction": self.name, "sequence": recorded.sequence},
                )
                await message.nak(delay=self._retry_delay)
                return
            HANDLED.labels(self.name, "handled").inc()
            self._finished += 1
            await message.ack()
        finally:
            self._handling.pop(id(message), None)
            self._slots.release()

    async def _traced(self, recorded: RecordedBatch) -> None:
        """Handles a batch in a span of the trace that wrote it (its `traceparent` header), so
        the commands and notifications of the reaction continue that trace, attributed to the
        batch's actor (one command's events share it)."""
        with (
            tracer.start_as_current_span(
                f"react {self.name}",
                context=propagate.extract(recorded.headers),
                kind=SpanKind.CONSUMER,
                attributes={"careops.sequence": recorded.sequence, "careops.stream": self.stream},
            ),
            caused_by(recorded.batch.events[0].actor),
        ):
            await self._handle(recorded)

    async def _park(self, message: Msg, reason: str, event_type: str, detail: str) -> None:
        """Parks a poison message (reason undecodable, unknown_type or failed), then terminates
        it; if even the parking fails (the database is down), it comes back later like any
        transient failure."""
        sequence = message.metadata.sequence.stream
        parked = ParkedMessage(
            consumer=self.name,
            stream=self.stream,
            sequence=sequence,
            reason=reason,
            subject=message.subject,
            event_type=event_type,
            detail=detail,
        )
        try:
            await asyncio.to_thread(_park_now, self._engine, parked)
        except Exception:
            HANDLED.labels(self.name, "failed").inc()
            log.warning("cannot park a poison message; will retry", exc_info=True)
            await message.nak(delay=self._retry_delay)
            return
        HANDLED.labels(self.name, "parked").inc()
        self._finished += 1
        log.error(
            "poison message parked",
            extra={
                "reaction": self.name,
                "stream": self.stream,
                "sequence": sequence,
                "reason": reason,
                "event_type": event_type,
            },
        )
        await message.term()


def _recorded(stream: str, message: Msg) -> RecordedBatch | None:
    """Returns the message as a batch of events; None if it is not one (or holds none)."""
    batch = EventBatch()
    try:
        batch.ParseFromString(message.data)
    except DecodeError:
        return None
    if not batch.events:
        return None
    return RecordedBatch(
        stream=stream,
        subject=message.subject,
        sequence=message.metadata.sequence.stream,
        batch=batch,
        headers=dict(message.headers or {}),
        deliveries=int(message.metadata.num_delivered or 1),
    )


def _park_now(engine: Engine, message: ParkedMessage) -> None:
    with engine.begin() as connection:
        park(connection, message)
