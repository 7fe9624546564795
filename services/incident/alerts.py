"""The alert stream use case: a team's waiting pages from the read model, then its live alerts
from the log right after the read model's position, so none is missed or sent twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

import nats.js.api
from careops.events.v1.envelope_pb2 import EventBatch
from careops_eventstore.codec import from_timestamp
from careops_eventstore.sqlstate import aware
from careops_eventstore.tasks import raise_if_cancel_swallowed
from careops_platform.errors import FieldViolation, InvalidArgument
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient

from incident import domain as d
from incident.application import CODEC, INCIDENT_SUBJECTS, STREAM, IncidentApp

QUEUE_SIZE = 1000  # live messages held for a slow watcher before the consumer waits


class AlertKind(Enum):
    PAGE = "page"
    ACKNOWLEDGED = "acknowledged"
    INFORMED = "informed"


@dataclass(frozen=True)
class Alert:
    """One alert of a team's watch: a page, its acknowledgement, or a notice the team got."""

    kind: AlertKind
    incident_id: str
    page_id: str
    team_id: str
    member_id: str
    level: d.Level
    incident_type: str
    title: str
    engagement: d.Engagement
    drill: bool
    sequence: int
    at: datetime | None
    ack_due_at: datetime | None = None
    replayed: bool = False


class WaitingPages(Protocol):
    """The read model's position and a team's unacknowledged pages as of it (one transaction)."""

    async def read(self, team_id: str) -> tuple[int, Sequence[Any]]:
        """Returns (checkpoint, waiting page rows) for the team."""
        ...


class AlertWatch:
    """A team's alerts: the pages still waiting, then the live ones."""

    def __init__(self, app: IncidentApp, *, nc: NatsClient, waiting: WaitingPages) -> None:
        self._app = app
        self._nc = nc
        self._waiting = waiting

    async def watch(self, team_id: str, after_sequence: int = 0) -> AsyncIterator[Alert]:
        """Checks the team and position (NOT_FOUND, INVALID_ARGUMENT), then returns the alerts:
        after `after_sequence` from the log, or (0) the waiting pages and what follows them."""
        await self._app.team(team_id)
        if after_sequence:
            last = await self._app.store.last_sequence(STREAM.name)
            if after_sequence > last:
                raise InvalidArgument(
                    f"after_sequence {after_sequence} is beyond the log's last sequence {last}",
                    [FieldViolation("after_sequence", f"must be at most {last}")],
                )
        return self._alerts(team_id, after_sequence)

    async def _alerts(self, team_id: str, position: int) -> AsyncIterator[Alert]:
        if not position:
            position, rows = await self._waiting.read(team_id)
            for row in rows:
                yield waiting_alert(row)
        async for sequence, batch in self._tail(position):
            for alert in await self._live(batch, team_id, sequence):
                yield alert

    async def _tail(self, position: int) -> AsyncIterator[tuple[int, EventBatch]]:
        """Yields the incident batches of the log after `position` (an ordered consumer)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_SIZE)

        async def collect(msg: Any) -> None:
            await queue.put(msg)

        subscription = await self._nc.jetstream().subscribe(
            f"{INCIDENT_SUBJECTS}.>",
            cb=collect,
            ordered_consumer=True,
            config=nats.js.api.ConsumerConfig(
                deliver_policy=nats.js.api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=position + 1,
            ),
            stream=STREAM.name,
        )
        try:
            while True:
                raise_if_cancel_swallowed()  # a lost cancel must not keep a gone client's watch
                msg = await queue.get()
                batch = EventBatch()
                with contextlib.suppress(DecodeError):
                    batch.ParseFromString(msg.data)
                yield msg.metadata.sequence.stream, batch
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _live(self, batch: EventBatch, team_id: str, sequence: int) -> list[Alert]:
        """Returns the batch's alerts for the team (pages are matched to it via the incident)."""
        alerts = []
        for decoded in CODEC.decode_batch(batch):
            event = decoded.event
            kind = alert_kind(event)
            if kind is None:
                continue
            incident, _ = await self._app.get(decoded.envelope.aggregate_id)
            page = incident.pages.get(getattr(event, "page_id", ""))
            event_team = getattr(event, "team_id", "") or (page.team_id if page else "")
            if event_team != team_id:
                continue
            alerts.append(
                Alert(
                    kind=kind,
                    incident_id=incident.incident_id,
                    page_id=getattr(event, "page_id", "") or getattr(event, "notice_id", ""),
                    team_id=team_id,
                    member_id=event.member_id,
                    level=incident.level,
                    incident_type=incident.type,
                    title=incident.title,
                    engagement=page.engagement if page else d.Engagement.GREY,
                    drill=incident.drill,
                    sequence=sequence,
                    at=from_timestamp(decoded.envelope.occurred_at),
                    ack_due_at=event.ack_due_at if isinstance(event, d.PageRequested) else None,
                )
            )
        return alerts


def alert_kind(event: Any) -> AlertKind | None:
    """Returns the kind of alert an incident event is for a team (None: not an alert)."""
    if isinstance(event, d.PageRequested):
        return AlertKind.PAGE
    if isinstance(event, d.PageAcknowledged):
        return AlertKind.ACKNOWLEDGED
    if isinstance(event, d.TeamInformed):
        return AlertKind.INFORMED
    return None


def waiting_alert(row: Any) -> Alert:
    """Returns a waiting page row of the read model as a replayed alert."""
    return Alert(
        kind=AlertKind.PAGE,
        incident_id=row.incident_id,
        page_id=row.page_id,
        team_id=row.team_id,
        member_id=row.member_id,
        level=d.Level(row.level),
        incident_type=row.type,
        title=row.title,
        engagement=d.Engagement(row.engagement),
        drill=row.drill,
        sequence=row.sequence,
        at=aware(row.requested_at),
        ack_due_at=aware(row.ack_due_at),
        replayed=True,
    )
