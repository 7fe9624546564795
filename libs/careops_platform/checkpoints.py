"""Projection positions read from SQL: how an API process (`--role api`), which runs no
projection, learns how far the worker's read models are.

The worker commits each batch's rows and its checkpoint in one transaction
(careops_eventstore.batches), so a checkpoint at or past a sequence means the read model shows
it. `SqlPositions` reads every checkpoint of the database in one query: continually while a
reader waits for a `min_sequence` (every `interval` seconds), and every `idle_interval` seconds
otherwise (for `position`, which caches keyed on it read). One query serves all waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools

from careops_eventstore.sqlstate import checkpoints
from sqlalchemy import Engine, select


class SqlPositions:
    """The projections' SQL checkpoints, as `wait_for` and `position` of the runners."""

    def __init__(
        self, engine: Engine, *, interval: float = 0.005, idle_interval: float = 0.25
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.idle_interval = idle_interval
        self._positions: dict[str, int] = {}
        self._waiters: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = {}
        self._ids = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def position(self, name: str) -> int:
        """The projection's checkpoint as last read (at most `idle_interval` old)."""
        return self._positions.get(name, 0)

    async def start(self) -> None:
        """Reads the checkpoints once, then keeps reading them in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="sql-positions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for waiters in self._waiters.values():
            for _sequence, _id, future in waiters:
                if not future.done():
                    future.cancel()
        self._waiters.clear()

    async def wait_for(self, name: str, sequence: int, timeout: float) -> bool:
        """Returns whether projection `name` reached `sequence` within `timeout` seconds."""
        if self.position(name) >= sequence:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters.setdefault(name, []), (sequence, next(self._ids), future))
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True

    async def refresh(self) -> None:
        """Reads every checkpoint and wakes the waiters they satisfy."""
        self._positions = await asyncio.to_thread(self._read)
        for name, waiters in self._waiters.items():
            position = self._positions.get(name, 0)
            while waiters and waiters[0][0] <= position:
                _sequence, _id, future = heapq.heappop(waiters)
                if not future.done():
                    future.set_result(None)

    def _read(self) -> dict[str, int]:
        query = select(checkpoints.c.projection, checkpoints.c.last_sequence)
        with self.engine.connect() as connection:
            return {str(name): int(last) for name, last in connection.execute(query)}

    def _waiting(self) -> bool:
        for waiters in self._waiters.values():
            while waiters and waiters[0][2].done():  # timed out or cancelled
                heapq.heappop(waiters)
            if waiters:
                return True
        return False

    async def _run(self) -> None:
        while True:
            waiting = self._waiting()
            self._wake.clear()
            if waiting:
                await asyncio.sleep(self.interval)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_interval)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - a database hiccup: the waiters' timeout governs
                await asyncio.sleep(self.idle_interval)
