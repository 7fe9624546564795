"""Durable projection runner: pull consumer -> SQL rows + checkpoint in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from opentelemetry import propagate, trace
from prometheus_client import Gauge, Histogram
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from careops_eventstore.batches import (
    APPLIED,
    SKIP_REASONS,
    SKIPPED,
    TRANSIENT,
    BatchOutcome,
    Projection,
    apply_batch,
    read_checkpoint,
    reset,
    transient,
)
from careops_eventstore.codec import EventCodec
from careops_eventstore.consumers import (
    STALL_AFTER_SECONDS,
    ConsumerStatus,
    ProgressWatch,
    fetch_batch,
    pending,
)
from careops_eventstore.jetstream import last_sequence_matching
from careops_eventstore.tasks import repeat_every, stop_task

# Names this module held before batches and consumers were split out of it; importing them from
# here keeps working.
__all__ = [
    "APPLIED",
    "BATCH_SECONDS",
    "INACTIVE_THRESHOLD_SECONDS",
    "LAG",
    "POSITION",
    "PROBE_INTERVAL_SECONDS",
    "SKIPPED",
    "SKIP_REASONS",
    "STALLED",
    "STALL_AFTER_SECONDS",
    "TRANSIENT",
    "BatchOutcome",
    "ConsumerStatus",
    "ProgressWatch",
    "Projection",
    "ProjectionRunner",
    "apply_batch",
    "fetch_batch",
    "pending",
    "read_checkpoint",
    "reset",
    "transient",
]

log = logging.getLogger(__name__)
INACTIVE_THRESHOLD_SECONDS = 300.0
PROBE_INTERVAL_SECONDS = 5.0
tracer = trace.get_tracer(__name__)
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


class _Resync(Exception):
    """A delivery went missing (or arrived out of order): restart from the checkpoint."""


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
            lag = pending(info, applied_through=self.position)
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
