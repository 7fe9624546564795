"""Read-model change watches for server streams (WatchKpis, WatchCustomer360): wait until any of
some projections applied an event after the positions a stream last answered at."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

Position = Callable[[str], int]
"""The last stream sequence projection `name` applied."""
WaitFor = Callable[[str, int, float], Awaitable[bool]]
"""Waits (bounded) until projection `name` reached a sequence; returns whether it did."""


class ReadModelChanges:
    """Tells when any of `names`' projections moved: woken by the projections' own waits, so a
    watcher queries nothing while they stand still."""

    def __init__(self, names: Sequence[str], position: Position, wait_for: WaitFor) -> None:
        self._names = tuple(names)
        self._position = position
        self._wait_for = wait_for

    def positions(self) -> tuple[int, ...]:
        """The last sequence each projection applied, in `names` order."""
        return tuple(self._position(name) for name in self._names)

    async def moved(self, since: tuple[int, ...], timeout: float) -> bool:
        """Returns whether any projection applied an event after `since` within `timeout` s."""
        tasks = [
            asyncio.ensure_future(self._wait_for(name, position + 1, timeout))
            for name, position in zip(self._names, since, strict=True)
        ]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return any(task.result() for task in done)
        finally:
            for task in tasks:
                task.cancel()
