"""stop_task stops a background loop even when a cancellation is lost on the way."""

from __future__ import annotations

import asyncio

from careops_eventstore.tasks import stop_task


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
