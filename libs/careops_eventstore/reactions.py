"""Reaction runner: a durable pull consumer whose messages trigger side effects or commands.

Replicas share one durable consumer (each message goes to one of them). Each message is handled
in its own task, so a slow side effect never holds back the next message; it is acked when its
handler succeeds and redelivered (after a short delay) when it fails. Handlers must therefore be
idempotent: derive command ids from the source event, check state before side effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from careops.events.v1.envelope_pb2 import EventBatch
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from prometheus_client import Counter

from careops_eventstore.model import RecordedBatch
from careops_eventstore.projection import fetch_batch

log = logging.getLogger(__name__)

HANDLED = Counter(
    "careops_reaction_messages_total",
    "Messages handled by reaction and outcome.",
    ["reaction", "outcome"],
)

Handler = Callable[[RecordedBatch], Awaitable[None]]


class ReactionRunner:
    """Feeds every message of `filter_subject` to `handle`, concurrently, at least once."""

    def __init__(
        self,
        *,
        nc: NatsClient,
        name: str,
        stream: str,
        filter_subject: str,
        handle: Handler,
        concurrency: int = 32,
        ack_wait_seconds: float = 30.0,
        retry_delay_seconds: float = 1.0,
    ) -> None:
        self._js = nc.jetstream()
        self.name = name
        self.stream = stream
        self._filter = filter_subject
        self._handle = handle
        self._slots = asyncio.Semaphore(concurrency)
        self._ack_wait = ack_wait_seconds
        self._retry_delay = retry_delay_seconds
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # As in ProjectionRunner: a cancellation nats-py's fetch swallows must not keep it going.
        self._stopping = False

    @property
    def durable(self) -> str:
        return f"react-{self.name}"

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"reaction-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _ensure_consumer(self) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.consumer_info(self.stream, self.durable)
            return
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self._filter,
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

    async def _one(self, message: Msg) -> None:
        try:
            batch = EventBatch()
            try:
                batch.ParseFromString(message.data)
            except DecodeError:
                HANDLED.labels(self.name, "undecodable").inc()
                await message.term()
                return
            recorded = RecordedBatch(
                stream=self.stream,
                subject=message.subject,
                sequence=message.metadata.sequence.stream,
                batch=batch,
                headers=dict(message.headers or {}),
            )
            try:
                await self._handle(recorded)
            except asyncio.CancelledError:
                raise
            except Exception:
                HANDLED.labels(self.name, "failed").inc()
                log.warning(
                    "reaction failed; will retry",
                    exc_info=True,
                    extra={"reaction": self.name, "sequence": recorded.sequence},
                )
                await message.nak(delay=self._retry_delay)
                return
            HANDLED.labels(self.name, "handled").inc()
            await message.ack()
        finally:
            self._slots.release()
