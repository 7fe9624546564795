"""Duplicate-safe timers: due times derived from events into SQL, fired as idempotent appends.

A projection writes rows into the `timers` table; the scheduler polls for due rows and calls the
service's `fire` callback, which appends an event whose message id is the timer id. Two replicas
(or a restart) firing the same timer therefore append it once; the fired event's projection then
deletes the row.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from itertools import groupby
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Connection, Engine, bindparam, delete, select
from sqlalchemy.orm import Session

from careops_eventstore.causes import CAUSE_KEY, caused_by, current_cause
from careops_eventstore.rows import rows
from careops_eventstore.sqlstate import aware, insert_for, timers
from careops_eventstore.tasks import stop_task

log = logging.getLogger(__name__)

FIRED = Counter(
    "careops_timers_fired_total", "Timers fired by kind and outcome.", ["kind", "outcome"]
)


@dataclass(frozen=True)
class DueTimer:
    """One timer row."""

    timer_id: str
    aggregate_id: str
    kind: str
    due_at: datetime
    data: dict[str, Any]


@cache
def _upsert(dialect: str) -> Any:
    """One cached upsert statement per dialect; rows are passed as parameters (executemany)."""
    statement = insert_for(dialect)(timers)
    columns = ("aggregate_id", "kind", "due_at", "data")
    return statement.on_conflict_do_update(
        index_elements=["timer_id"], set_={name: statement.excluded[name] for name in columns}
    )


def schedule(connection: Connection, *due_timers: DueTimer) -> None:
    """Inserts or replaces timer rows (called by projections: inside a batch the rows join its
    executemany, careops_eventstore.rows; a timer id belongs to one aggregate). Within a
    reaction or projection, each row remembers whose event scheduled it (`CAUSE_KEY`)."""
    if not due_timers:
        return
    cause = {CAUSE_KEY: current_cause()} if current_cause() else {}
    statement, writer = _upsert(connection.dialect.name), rows(connection)
    for aggregate_id, group in groupby(due_timers, key=lambda timer: timer.aggregate_id):
        parameters = [
            {
                "timer_id": timer.timer_id,
                "aggregate_id": aggregate_id,
                "kind": timer.kind,
                "due_at": timer.due_at,
                "data": json.dumps({**cause, **timer.data}),
            }
            for timer in group
        ]
        writer.write_all(statement, parameters, key=aggregate_id)


_CANCEL_ALL = delete(timers).where(timers.c.aggregate_id == bindparam("aggregate"))


def cancel_all(connection: Connection, aggregate_id: str) -> None:
    """Deletes every pending timer of an aggregate (called by projections)."""
    rows(connection).write(_CANCEL_ALL, {"aggregate": aggregate_id}, key=aggregate_id)


# By aggregate first: its index finds the rows. A LIKE on the key alone scans the whole table
# in SQLite (LIKE is case-insensitive there, so the primary key's index cannot serve it).
_CANCEL_PREFIX = delete(timers).where(
    timers.c.aggregate_id == bindparam("aggregate"),
    timers.c.timer_id.startswith(bindparam("prefix")),
)


def cancel_prefixed(connection: Connection, aggregate_id: str, prefix: str) -> None:
    """Deletes the pending timers of an aggregate whose id starts with `prefix` (called by
    projections)."""
    parameters = {"aggregate": aggregate_id, "prefix": prefix}
    rows(connection).write(_CANCEL_PREFIX, parameters, key=aggregate_id)


def cancel(connection: Connection, timer_id: str) -> None:
    """Deletes one pending timer; its aggregate is not known here, so it runs after every
    write buffered before it."""
    rows(connection).write(delete(timers).where(timers.c.timer_id == timer_id), {}, key=None)


def due(engine: Engine, now: datetime, limit: int = 100) -> list[DueTimer]:
    """Returns timers due at `now`, earliest first."""
    with Session(engine) as session:
        rows = session.execute(
            select(timers).where(timers.c.due_at <= now).order_by(timers.c.due_at).limit(limit)
        ).all()
    return [
        DueTimer(
            row.timer_id,
            row.aggregate_id,
            row.kind,
            aware(row.due_at),
            json.loads(row.data),
        )
        for row in rows
    ]


class TimerScheduler:
    """Polls the timers table and fires due timers through `fire` (which must be idempotent)."""

    def __init__(
        self,
        *,
        engine: Engine,
        fire: Callable[[DueTimer], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        interval: float = 0.5,
    ) -> None:
        self._engine = engine
        self._fire = fire
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        # One scan at a time: a tick that finds its timers being fired by another (the background
        # loop) waits for it instead of returning early, so "tick() returned" means every timer due
        # at its time has been attempted; a test's tick never races the service's own loop.
        self._scanning = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="timer-scheduler")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def tick(self) -> int:
        """Fires every timer due now; returns how many were attempted."""
        async with self._scanning:
            pending = await asyncio.to_thread(due, self._engine, self._clock())
            for timer in pending:
                await self._attempt(timer)
            return len(pending)

    async def _attempt(self, timer: DueTimer) -> None:
        try:
            with caused_by(str(timer.data.get(CAUSE_KEY, ""))):
                await self._fire(timer)
            FIRED.labels(timer.kind, "fired").inc()
        except Exception:
            FIRED.labels(timer.kind, "failed").inc()
            log.warning("timer failed; will retry", exc_info=True, extra={"timer": timer.timer_id})

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("timer scan failed", exc_info=True)
            await asyncio.sleep(self._interval)
