"""What projection and reaction consumers share: fetching a batch, telling a stall, status."""

from __future__ import annotations

import asyncio
import json
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
    rest = await _fetch_waiting(subscription, size - 1)
    if rest is None:  # not the subscription nats-py 2.16 builds: its own fetch, for 1 ms
        try:
            rest = await subscription.fetch(size - 1, timeout=0.001)
        except (nats.errors.TimeoutError, TimeoutError):
            rest = []
    return [*first, *rest]


# A no-wait request is answered at once; this bounds the wait should the answer never come (a
# loaded machine may take its time: a batch cut short is only smaller).
_ANSWER_WAIT_SECONDS = 1.0


async def _fetch_waiting(
    subscription: nats.js.JetStreamContext.PullSubscription, size: int
) -> list[Msg] | None:
    """Up to `size` messages the consumer has now: what is already queued, then one no-wait
    pull request for the rest, read until it is full or the server says there is no more.

    nats-py's `fetch(n)` waits for each message of a batch with a timer and a task of its own
    (`next_msg`): most of a replay's per-message cost in the client. Here the queue is read
    directly, with a wait only when it is empty (once per network read, not per message).
    Returns None where the subscription is not laid out as nats-py 2.16 lays it out."""
    inner = getattr(subscription, "_sub", None)
    queue: asyncio.Queue[Msg] | None = getattr(inner, "_pending_queue", None)
    request = getattr(subscription, "_nms", None)
    inbox = getattr(subscription, "_deliver", None)
    client = getattr(subscription, "_nc", None)
    if inner is None or queue is None or request is None or inbox is None or client is None:
        return None
    found: list[Msg] = []

    def take(message: Msg) -> bool:
        """Keeps a delivered message; False at a status that ends the answer."""
        inner._pending_size -= len(message.data)
        queue.task_done()
        status = message.headers.get(api.Header.STATUS) if message.headers else None
        if status is None:
            found.append(message)
            return True
        # 404 no messages, 408 request timeout, or a condition such as the consumer's deletion
        # (409: the next fetch raises for it) end the answer; a heartbeat (100) does not.
        return not status.startswith("4")

    # Left in the queue by an earlier request (a status there was meant for it: skipped).
    while not queue.empty() and len(found) < size:
        take(queue.get_nowait())
    needed = size - len(found)
    if needed <= 0:
        return found
    await client.publish(request, json.dumps({"batch": needed, "no_wait": True}).encode(), inbox)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _ANSWER_WAIT_SECONDS
    while len(found) < size:
        if queue.empty():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
        else:
            message = queue.get_nowait()
        if not take(message):
            break
    return found


def delivery(message: Msg) -> tuple[int, int]:
    """(stream sequence, consumer sequence) of a JetStream delivery, as `message.metadata`
    reads them from its reply subject, without building the rest of the metadata (its
    timestamp, two dataclasses) for every message of a batch."""
    tokens = (message.reply or "").split(".")
    if len(tokens) == _V1_TOKENS and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5]), int(tokens[6])
    sequence = message.metadata.sequence  # the newer layout, or not JetStream (raises)
    return sequence.stream, sequence.consumer


# $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
_V1_TOKENS = 9


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
