"""A watch whose client went away stops, even when the cancel reached it inside
`asyncio.wait_for` and was swallowed there (CPython 3.11, gh-86296)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from incident.alerts import raise_if_cancel_swallowed


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
