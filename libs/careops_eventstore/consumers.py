"""What projection and reaction consumers share: fetching a batch, telling a stall, status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

# Behind and no progress for this long: the projection (or reaction) is reported as stalled.
STALL_AFTER_SECONDS = 60.0
T = TypeVar("T")


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


class ConsumerRequests:
    """Creates and deletes one durable consumer one request at a time, never abandoning one.

    A clustered (R3) stream answers neither a consumer's delete nor its create when the delete
    arrives while that create is still in flight (nats-server 2.15; the delete is applied all
    the same): the caller waits out the API timeout. A group stopped in the middle of its
    consumer's create and then rebuilt did exactly that, once per retry of the rebuild
    (docs/runbooks.md, "Running on a NATS cluster"). So a request runs on to its answer when
    its caller is cancelled, and the next one is sent only after it.
    """

    def __init__(self) -> None:
        self._last: asyncio.Task[Any] | None = None

    async def run(self, request: Callable[[], Awaitable[T]]) -> T:
        """Sends `request()` once the request before it has been answered; returns its answer.
        Cancelling the caller leaves the request running."""
        task = asyncio.create_task(_after(self._last, request))
        task.add_done_callback(_retrieve)
        self._last = task
        return await asyncio.shield(task)


async def _after(previous: asyncio.Task[Any] | None, request: Callable[[], Awaitable[T]]) -> T:
    if previous is not None and not previous.done():
        await asyncio.wait({previous})
    return await request()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Marks an outcome nobody awaited any more as retrieved (its caller was cancelled, and
    reported its own failure where it happened)."""
    if not task.cancelled():
        task.exception()


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


def pending(info: api.ConsumerInfo, applied_through: int = 0) -> int:
    """Returns a consumer's messages not yet delivered or not yet acked. Once the reader has
    applied everything delivered (`applied_through` at or past the last delivered stream
    sequence), unacked messages are only acks in flight, not lag."""
    delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
    in_flight = 0 if applied_through and applied_through >= delivered else info.num_ack_pending
    return int(info.num_pending or 0) + int(in_flight or 0)
