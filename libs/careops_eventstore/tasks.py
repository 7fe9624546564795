"""Stopping background tasks for good."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# How often a task that swallowed its cancellation is cancelled again.
RECANCEL_SECONDS = 0.1


def raise_if_cancel_swallowed() -> None:
    """Raises CancelledError if the current task was asked to stop and the request got lost.

    The same `asyncio.wait_for` of Python 3.11 (CPython gh-86296) inside a request handler: a
    stream whose client went away at that moment would wait on (for the next alert, the next
    change) with its consumer, forever. A stream's loop calls this before each wait."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_task(task: asyncio.Task[object] | None) -> None:
    """Cancels `task` and waits until it has ended, cancelling it again while it runs.

    One cancel is not enough: on Python 3.11, `asyncio.wait_for` (used inside nats-py's requests
    and fetches) returns a result that completes at the moment of the cancellation and drops
    the cancellation, so a `while True` loop around it would run on and `await task` would hang
    forever (seen as a service's stop hanging on a loaded machine).
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
    if not task.cancelled():
        task.exception()  # marked retrieved: a failure was reported where it happened


async def repeat_every(
    interval: float,
    step: Callable[[], Awaitable[object]],
    running: Callable[[], bool],
    what: str,
    *,
    level: int = logging.DEBUG,
) -> None:
    """Awaits `step` every `interval` seconds while `running()`; a failed step is logged (at
    debug level unless `level` says otherwise) and retried at the next turn (a probe must
    outlive a NATS outage it is measuring)."""
    while running():
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.log(level, "%s failed; retrying", what, exc_info=True)
        await asyncio.sleep(interval)
