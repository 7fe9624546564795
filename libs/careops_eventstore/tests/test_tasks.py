"""stop_task stops a background loop, and a stream stops itself, even when a cancellation is
lost on the way (Python 3.11's wait_for, CPython gh-86296)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from careops_eventstore.tasks import raise_if_cancel_swallowed, stop_task


async def test_a_task_that_swallows_a_cancellation_is_still_stopped() -> None:
    started = asyncio.Event()
    swallowed = 0

    async def loop_that_loses_one_cancellation() -> None:
        # What Python 3.11's wait_for does when its inner future completes as it is cancelled.
        nonlocal swallowed
        started.set()
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(loop_that_loses_one_cancellation())
    await started.wait()
    await asyncio.wait_for(stop_task(task), timeout=30)
    assert task.cancelled() and swallowed == 1


async def test_a_finished_or_failed_task_stops_quietly() -> None:
    async def fails() -> None:
        raise RuntimeError("reported where it happened")

    task = asyncio.create_task(fails())
    await asyncio.wait({task})
    await stop_task(task)
    await stop_task(None)
    assert isinstance(task.exception(), RuntimeError)


async def _swallow_a_cancel_then_wait(waiting: asyncio.Event) -> None:
    # Swallowed, as asyncio.wait_for does when its future completes as the cancel arrives.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    raise_if_cancel_swallowed()
    waiting.set()
    await asyncio.Event().wait()  # the next alert: without the check, forever


async def test_a_swallowed_cancel_stops_the_watch_before_it_waits_again() -> None:
    waiting = asyncio.Event()
    task = asyncio.create_task(_swallow_a_cancel_then_wait(waiting))
    await asyncio.sleep(0)  # let it reach its first wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert not waiting.is_set()


async def test_a_task_nobody_cancelled_goes_on() -> None:
    raise_if_cancel_swallowed()  # the test's own task: not cancelled, nothing raised

    async def check() -> str:
        raise_if_cancel_swallowed()
        return "went on"

    assert await asyncio.create_task(check()) == "went on"
