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
from functools import partial
from typing import Any

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
    apply_batches,
    read_checkpoint,
    reset,
    transient,
)
from careops_eventstore.codec import EventCodec
from careops_eventstore.consumers import (
    STALL_AFTER_SECONDS,
    ConsumerRequests,
    ConsumerStatus,
    ProgressWatch,
    delivery,
    fetch_batch,
    pending,
)
from careops_eventstore.jetstream import last_sequence_matching
from careops_eventstore.model import LogUnavailable
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
    "ProjectionGroup",
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
# A group a batch or more behind (a rebuild, a restart after downtime) takes batches of up to
# CATCH_UP_BATCH_SIZE: fewer transactions, checkpoint writes and acks per event. Caught up, it
# goes back to its batch size, so live batches keep SQLite's write lock briefly.
CATCH_UP_BATCH_SIZE = 2048
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


class _Member:
    """One projection of a group: its position (checkpoint as last applied), the readers
    waiting for it, and whether it is moving."""

    def __init__(self, projection: Projection, clock: Callable[[], float] | None) -> None:
        self.projection = projection
        self.position = 0
        self.watch = ProgressWatch(clock=clock)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_ids = itertools.count()
        name = projection.name
        for reason in SKIP_REASONS:
            SKIPPED.labels(name, reason)
        APPLIED.labels(name)
        LAG.labels(name)
        STALLED.labels(name)
        BATCH_SECONDS.labels(name)

    async def wait_for(self, sequence: int, timeout: float) -> bool:
        if self.position >= sequence:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (sequence, next(self._waiter_ids), future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True

    def advance(self, sequence: int) -> None:
        """Moves the position on and wakes exactly the waiters it satisfies."""
        self.position = max(self.position, sequence)
        POSITION.labels(self.projection.name).set(self.position)
        while self._waiters and self._waiters[0][0] <= self.position:
            _sequence, _id, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    def observe(self, lag: int) -> None:
        self.watch.observe(self.position, lag)
        LAG.labels(self.projection.name).set(lag)
        STALLED.labels(self.projection.name).set(int(self.watch.stalled))


class ProjectionGroup:
    """Feeds the projections of one stream and filter from one durable pull consumer; ack only
    after the SQL commit.

    Each batch is fetched once, each message parsed and each event decoded once, and applied to
    every projection of the group in one SQL transaction, each advancing its own checkpoint
    row. One consumer, one decode and one commit per batch instead of one per read model: with
    five read models on one stream, five consumers meant five fetches, decodes and write
    transactions per batch competing for the same SQLite write lock (docs/benchmarks.md §13).
    """

    def __init__(
        self,
        *,
        nc: NatsClient,
        engine: Engine,
        projections: Sequence[Projection],
        codec: EventCodec,
        stream: str,
        filter_subject: str,
        batch_size: int = 256,
        catch_up_batch_size: int = CATCH_UP_BATCH_SIZE,
        clock: Callable[[], float] | None = None,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
    ) -> None:
        if not projections:
            raise ValueError("a projection group needs at least one projection")
        self._nc = nc
        self._js = nc.jetstream()
        self._engine = engine
        self.projections = list(projections)
        self._codec = codec
        self.stream = stream
        self.filter_subject = filter_subject
        self._batch_size = batch_size
        self._catch_up_batch_size = max(batch_size, catch_up_batch_size)
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._probe_interval = probe_interval
        # Set by stop(): nats-py's fetch can swallow a cancellation that races with an arriving
        # message, so the loops also check this flag (then stop within one idle wait).
        self._stopping = False
        self.members = {p.name: _Member(p, clock) for p in self.projections}
        # The consumer sequence the next delivery must carry (the server numbers every delivery,
        # redeliveries included, 1, 2, 3, ... for a consumer): a jump means one went missing.
        self._next_delivery = 1
        self._suspect = -1  # the _next_delivery at a probe that saw the server ahead of it
        self._resync_wanted = False
        self._clock = clock
        # Fixed at creation: the group keeps its consumer when a projection leaves it.
        self._durable = f"proj-{self.projections[0].name}-{uuid.uuid4().hex[:12]}"
        self._requests = ConsumerRequests()  # its creates and deletes, one after the other
        self.name = "+".join(self.members)

    def runners(self) -> dict[str, ProjectionRunner]:
        """One runner (the per-read-model handle) per projection, by name."""
        return {name: ProjectionRunner(group=self, name=name) for name in self.members}

    @property
    def durable(self) -> str:
        """This process's consumer: replicas each read the whole stream and the SQL checkpoint
        lock lets exactly one apply each message; orphans expire after INACTIVE_THRESHOLD."""
        return self._durable

    async def start(self) -> None:
        """Loads the checkpoints and starts consuming (and probing the lag) in the background;
        a group already running is left as it is."""
        if self._task is not None:
            return
        await self._load_positions()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.name}")
        self._probe = asyncio.create_task(self._probe_loop(), name=f"projection-probe-{self.name}")

    async def stop(self) -> None:
        """Stops consuming (a create or delete of the consumer in flight runs on to its answer,
        and the group's next one waits for it: see ConsumerRequests)."""
        self._stopping = True
        for task in (self._task, self._probe):
            await stop_task(task)
        self._task = self._probe = None

    async def detach(self, name: str) -> ProjectionGroup:
        """Takes projection `name` out of this group into a new group of its own (started by
        its caller), keeping its position and waiters; this group goes on without it."""
        await self.stop()
        member = self.members.pop(name)
        self.projections = [p for p in self.projections if p.name != name]
        self.name = "+".join(self.members)
        alone = ProjectionGroup(
            nc=self._nc,
            engine=self._engine,
            projections=[member.projection],
            codec=self._codec,
            stream=self.stream,
            filter_subject=self.filter_subject,
            batch_size=self._batch_size,
            catch_up_batch_size=self._catch_up_batch_size,
            clock=self._clock,
            probe_interval=self._probe_interval,
        )
        alone.members[name] = member
        await self.start()
        return alone

    async def rebuild(self, name: str) -> None:
        """Drops projection `name`'s read model and replays the stream into it from the
        beginning (the group's other projections, if any, skip what they already have: see
        ProjectionRunner.rebuild, which first gives it a group of its own)."""
        await self.stop()
        try:
            await self._delete_consumer()
        except (TimeoutError, nats.errors.Error) as exc:
            # A clustered stream between leaders: the read model is untouched, so it runs on.
            await self.start()
            raise LogUnavailable(
                "the event log (NATS) did not answer; nothing was reset, retry the rebuild"
            ) from exc
        await asyncio.to_thread(reset, self._engine, self.members[name].projection)
        self.members[name].position = 0
        await self.start()

    async def target(self) -> int:
        """Returns the stream sequence of the last message this group reads (its filter's
        last, not the stream's: a filtered projection never sees the others)."""
        return await last_sequence_matching(self._nc, self.stream, self.filter_subject)

    async def status(self, name: str) -> ConsumerStatus:
        """Returns the position, lag (from the log) and stalled flag of `name`, probing now."""
        await self._observe()
        member = self.members[name]
        return ConsumerStatus(
            name=name,
            kind="projection",
            stream=self.stream,
            filter_subject=self.filter_subject,
            position=member.position,
            lag=member.watch.lag,
            stalled=member.watch.stalled,
        )

    async def _observe(self) -> None:
        """Measures the lag: what the consumer still holds, or (with no consumer, e.g. while
        the runner retries) whether the log has anything past the position."""
        try:
            info = await self._js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            last = await self.target()
            for member in self.members.values():
                member.observe(int(last > member.position))
            return
        except (TimeoutError, nats.errors.Error) as exc:
            # A clustered stream between leaders: the lag is unknown, not an internal error.
            raise LogUnavailable("the event log (NATS) did not answer; lag unknown") from exc
        self._check_lost(int(info.delivered.consumer_seq or 0) if info.delivered else 0)
        for member in self.members.values():
            member.observe(pending(info, applied_through=member.position))

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

    async def _load_positions(self) -> None:
        positions = await asyncio.to_thread(self._read_checkpoints)
        for name, position in positions.items():
            member = self.members[name]
            member.position = position
            POSITION.labels(name).set(position)

    def _read_checkpoints(self) -> dict[str, int]:
        with Session(self._engine) as session:
            return {name: read_checkpoint(session, name) for name in self.members}

    async def _ensure_consumer(self) -> None:
        """(Re)creates the durable consumer to deliver from the lowest SQL checkpoint onwards.

        The checkpoints, not the consumer, are the truth: starting from them discards
        deliveries still pending for a crashed process, which would otherwise arrive out of
        order.
        """
        await self._load_positions()
        # Another replica may have applied what a reader waits for: wake it now.
        for member in self.members.values():
            member.advance(member.position)
        await self._delete_consumer()
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.filter_subject,
            # One ack per batch (for its last applied message) acks every message before it.
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=min(member.position for member in self.members.values()) + 1,
            ack_wait=30,
            max_ack_pending=10_000,
            inactive_threshold=INACTIVE_THRESHOLD_SECONDS,
        )
        await self._requests.run(partial(self._js.add_consumer, self.stream, config))
        self._next_delivery, self._suspect, self._resync_wanted = 1, -1, False

    async def _delete_consumer(self) -> None:
        """Deletes the group's consumer (gone already is fine)."""
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._requests.run(partial(self._js.delete_consumer, self.stream, self.durable))

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
                log.info("resyncing from checkpoint", extra={"projection": self.name})
            except nats.js.errors.NotFoundError:
                # Another context's stream may not exist yet (its service has not started).
                log.debug("waiting for stream %s", self.stream)
                await asyncio.sleep(2.0)
            except Exception:
                log.warning(
                    "projection interrupted; retrying",
                    exc_info=True,
                    extra={"projection": self.name},
                )
                await asyncio.sleep(0.5)

    async def _consume(self, subscription: nats.js.JetStreamContext.PullSubscription) -> None:
        size = self._batch_size
        try:
            while not self._stopping:
                messages = await fetch_batch(subscription, size)
                if messages:
                    await self._handle(messages)
                    size = self._next_batch_size(messages[-1])
                if self._resync_wanted:
                    raise _Resync()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def _next_batch_size(self, last: Msg) -> int:
        """The catch-up size while at least a batch is still pending behind `last`, else the
        batch size."""
        behind = last.metadata.num_pending >= self._batch_size
        return self._catch_up_batch_size if behind else self._batch_size

    def _until_gap(self, messages: list[Msg]) -> tuple[list[Msg], bool]:
        """Returns the deliveries up to a missing one (lost to a fetch that timed out as the
        server sent it, it would come back only as a redelivery after ack_wait, behind later
        messages), and whether one is missing. Stream sequences cannot tell: a filtered
        consumer skips the stream's other subjects."""
        for index, message in enumerate(messages):
            _stream, delivered = delivery(message)
            if delivered > self._next_delivery:
                log.info(
                    "delivery %d missing (got %d); resyncing",
                    self._next_delivery,
                    delivered,
                    extra={"projection": self.name},
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
        sequences = [delivery(message)[0] for message in messages]
        started = time.perf_counter()
        started_ns = time.time_ns()
        outcomes = await asyncio.to_thread(
            apply_batches,
            self._engine,
            self.projections,
            self._codec,
            self.stream,
            [message.data for message in messages],
            sequences,
            contiguous=False,
            subjects=[message.subject for message in messages],
        )
        self._trace(messages, started_ns)
        elapsed = time.perf_counter() - started
        applied_through = min(outcome.last_sequence for outcome in outcomes)
        poison = {sequence for outcome in outcomes for sequence in outcome.poison}
        last_applied: Msg | None = None
        for message, sequence in zip(messages, sequences, strict=True):
            if sequence in poison:
                await message.term()
            elif sequence <= applied_through:
                last_applied = message
        if last_applied is not None:
            # AckPolicy.ALL: acks it and every message delivered before it (applied, or
            # parked with its skip recorded in the same transaction).
            await last_applied.ack()
        for projection, outcome in zip(self.projections, outcomes, strict=True):
            BATCH_SECONDS.labels(projection.name).observe(elapsed)
            LAG.labels(projection.name).set(messages[-1].metadata.num_pending)
            self.members[projection.name].advance(outcome.last_sequence)

    def _trace(self, messages: list[Msg], started_ns: int) -> None:
        """Records one span per applied message and projection in the trace of the command
        that wrote it."""
        ended_ns = time.time_ns()
        for message in messages:
            if not message.headers or "traceparent" not in message.headers:
                continue
            context = propagate.extract(dict(message.headers))
            sequence, _delivered = delivery(message)
            for name in self.members:
                span = tracer.start_span(
                    f"project {name}",
                    context=context,
                    start_time=started_ns,
                    attributes={"careops.sequence": sequence, "careops.batch_size": len(messages)},
                )
                span.end(end_time=ended_ns)


class ProjectionRunner:
    """One read model as the service and operators see it: its position, read-your-writes
    waits, status and rebuild. It is fed by its ProjectionGroup (pass `group` and `name`), or
    given the group's arguments and one `projection`, by a group of its own."""

    def __init__(
        self,
        *,
        group: ProjectionGroup | None = None,
        name: str = "",
        projection: Projection | None = None,
        **group_arguments: Any,
    ) -> None:
        if group is None:
            if projection is None:
                raise ValueError("give a group and a name, or a projection")
            group = ProjectionGroup(projections=[projection], **group_arguments)
            name = projection.name
        self.group = group
        self._member = group.members[name]
        self.projection = self._member.projection
        self.stream = group.stream
        self.filter_subject = group.filter_subject

    @property
    def position(self) -> int:
        """The last stream sequence this projection has applied."""
        return self._member.position

    async def start(self) -> None:
        """Starts the group that feeds this projection (once for the whole group)."""
        await self.group.start()

    async def stop(self) -> None:
        """Stops the group that feeds this projection (and so its other projections)."""
        await self.group.stop()

    async def rebuild(self) -> None:
        """Drops the read model and replays the stream from the beginning. A projection that
        shares its group first moves to a consumer of its own (until the process restarts), so
        the replay does not hold back the read models it shared it with."""
        name = self.projection.name
        if len(self.group.members) > 1:
            self.group = await self.group.detach(name)
        await self.group.rebuild(name)

    async def target(self) -> int:
        """Returns the stream sequence of the last message this projection reads."""
        return await self.group.target()

    async def wait_for(self, sequence: int, timeout: float) -> bool:
        """Waits until the projection has applied `sequence`; returns False on timeout."""
        return await self._member.wait_for(sequence, timeout)

    async def status(self) -> ConsumerStatus:
        """Returns the position, lag (from the log) and stalled flag, probing the lag now."""
        return await self.group.status(self.projection.name)
