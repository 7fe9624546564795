"""Customer reactions: recompute RFM segments as facts arrive, and for everyone periodically.

As facts arrive: a purchase (own stream) or a new ticket (ticketing's stream,
a contact) recomputes that customer's segment against the cached quintile population.
Periodically (default daily): everyone is recomputed against a fresh population, because
recency decays with time alone: purchases leave the windows and the churn period runs out
without any event arriving. Replicas may both run it: a segment change's command id is derived
from the customer's read-model version and the new segment, so the change is appended once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from careops_eventstore.model import RecordedBatch
from careops_eventstore.tasks import stop_task
from careops_published import ticketing as tk
from careops_published.codec import view_codec
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from customer import domain as d
from customer import readmodels
from customer.application import CODEC, CustomerApp
from customer.projections import CustomerProjection, TicketFactsProjection
from customer.readmodels import Versions

log = logging.getLogger(__name__)

WaitFor = Callable[[str, int, float], Awaitable[bool]]
TRIGGERS = (d.PurchaseRecorded,)
# The reaction's `event_types`: a batch without a trigger is acked unread (counted `passed`).
TRIGGER_TYPES = CODEC.only(*TRIGGERS).type_names
BATCH = 500
# A new ticket is all this reaction reads of ticketing's stream (the rest is acked unread).
OPENED_CODEC = view_codec(tk.TicketOpened)


def segment_command_id(customer_id: str, version: int, segment: d.Segment) -> str:
    """Returns the id of one segment change: same inputs, same id (replicas append it once)."""
    text = f"{customer_id}|{version}|{segment}"
    return "seg-" + hashlib.sha256(text.encode()).hexdigest()[:32]


class Segmenter:
    """Computes segments from the read models and appends the changes."""

    def __init__(
        self,
        app: CustomerApp,
        engine: Engine,
        wait_for: WaitFor,
        *,
        population_ttl_seconds: float = 300.0,
        wait_seconds: float = 10.0,
    ) -> None:
        self._app = app
        self._engine = engine
        self._wait_for = wait_for
        self._ttl = population_ttl_seconds
        self._wait = wait_seconds
        self._population: d.Population | None = None
        self._population_at = 0.0

    def _activities(self, now: datetime, ids: Sequence[str] | None) -> list[d.Activity]:
        with Session(self._engine) as session:
            return self._read_activities(session, now, ids)

    def _read_activities(
        self, session: Session, now: datetime, ids: Sequence[str] | None
    ) -> list[d.Activity]:
        model = self._app.model
        return readmodels.activities(
            session=session,
            frequency_since=now - model.frequency_window,
            monetary_since=now - model.monetary_window,
            currency=model.currency,
            customer_ids=ids,
        )

    def _facts(self, now: datetime, ids: Sequence[str]) -> tuple[list[d.Activity], Versions]:
        """The customers' activities and recorded segments, in one session (one thread hop)."""
        with Session(self._engine) as session:
            return self._read_activities(session, now, ids), readmodels.recorded_segments(
                session=session, customer_ids=ids
            )

    def _versions(self, ids: Sequence[str]) -> Versions:
        with Session(self._engine) as session:
            return readmodels.recorded_segments(session=session, customer_ids=ids)

    def _expired(self) -> bool:
        return self._population is None or time.monotonic() - self._population_at > self._ttl

    async def recompute(self, ids: Sequence[str] | None, *, causation_id: str = "") -> int:
        """Recomputes the given customers (None: everyone); returns how many changed.

        When the quintile population is due (or everyone is recomputed), the customers' facts
        and the population come from one read, so a customer is never ranked against a newer
        copy of itself; otherwise the cached population is used (at most the TTL old)."""
        now = self._app.clock()
        prefetched: Versions | None = None  # read with the activities (a few customers' only)
        if ids is None or self._expired():
            everyone = await asyncio.to_thread(self._activities, now, None)
            self._population = d.Population.of(everyone)
            self._population_at = time.monotonic()
            wanted = set(ids) if ids is not None else None
            activities = [a for a in everyone if wanted is None or a.customer_id in wanted]
        elif len(ids) <= BATCH:
            activities, prefetched = await asyncio.to_thread(self._facts, now, ids)
        else:
            activities = await asyncio.to_thread(self._activities, now, ids)
        population = self._population
        assert population is not None
        changed = 0
        for start in range(0, len(activities), BATCH):
            chunk = activities[start : start + BATCH]
            current = (
                prefetched
                if prefetched is not None
                else await asyncio.to_thread(self._versions, [a.customer_id for a in chunk])
            )
            for activity in chunk:
                known = current.get(activity.customer_id)
                if known is None:
                    continue
                version, recorded = known
                segment = d.segment(activity, population, self._app.model, now)
                if segment == recorded:
                    continue
                result = await self._app.assign_segment(
                    activity.customer_id,
                    segment,
                    command_id=segment_command_id(activity.customer_id, version, segment),
                    causation_id=causation_id,
                )
                changed += bool(result.events)
        return changed

    async def handle(self, message: RecordedBatch) -> None:
        """Own stream: a purchase recomputes that customer (a new customer already holds the
        segment of a customer without purchases)."""
        decoded = CODEC.decode_batch(message.batch)
        if not any(isinstance(item.event, TRIGGERS) for item in decoded):
            return
        await self._wait_for(CustomerProjection.name, message.sequence, self._wait)
        customer_id = decoded[0].envelope.aggregate_id
        await self.recompute([customer_id], causation_id=decoded[0].envelope.event_id)

    async def handle_ticket(self, message: RecordedBatch) -> None:
        """Ticketing's stream: a new ticket is a contact (it can clear the churn flag)."""
        for item in OPENED_CODEC.decode_batch(message.batch):
            if isinstance(item.event, tk.TicketOpened) and item.event.customer_id:
                await self._wait_for(TicketFactsProjection.name, message.sequence, self._wait)
                await self.recompute([item.event.customer_id], causation_id=item.envelope.event_id)


class SegmentSchedule:
    """Recomputes every customer every `interval_seconds` (recency decays with time alone)."""

    def __init__(
        self, segmenter: Segmenter, *, interval_seconds: float, initial_delay_seconds: float
    ) -> None:
        self._segmenter = segmenter
        self._interval = interval_seconds
        self._delay = initial_delay_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="segment-schedule")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        await asyncio.sleep(self._delay)
        while True:
            started = time.perf_counter()
            try:
                changed = await self._segmenter.recompute(None)
                log.info(
                    "segments recomputed",
                    extra={"changed": changed, "seconds": round(time.perf_counter() - started, 3)},
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("segment recomputation failed; will retry", exc_info=True)
            await asyncio.sleep(self._interval)
