"""Incident reactions: deliver pages and notices; declare incidents from complaint surges."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from careops.ticketing.v1 import events_pb2 as ticket_events
from careops.ticketing.v1 import types_pb2 as ticket_types
from careops_eventstore.codec import from_timestamp
from careops_eventstore.model import RecordedBatch
from careops_eventstore.sqlstate import insert_for
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from incident import domain as d
from incident.application import CODEC, IncidentApp
from incident.notifiers import Notification, Notifiers
from incident.readmodels import surge_complaints, surge_incidents

log = logging.getLogger(__name__)

TICKET_OPENED = "careops.ticketing.v1.TicketOpened"
SURGE_TYPE = "complaint_surge"


class PageDispatcher:
    """Delivers each page and notice to every contact point, concurrently, and records outcomes.

    Idempotent: a channel whose outcome is on the log is not sent again, pages of resolved
    incidents and acknowledged pages are not sent at all.
    """

    def __init__(self, app: IncidentApp, notifiers: Notifiers) -> None:
        self._app = app
        self._notifiers = notifiers

    async def handle(self, message: RecordedBatch) -> None:
        """Acts on every page and notice of the message at once: one team's slow or failing
        channel must not hold back another team's page."""
        actions = []
        for decoded in CODEC.decode_batch(message.batch):
            event = decoded.event
            incident_id = decoded.envelope.aggregate_id
            if isinstance(event, d.PageRequested | d.TeamInformed):
                actions.append(self._notify(incident_id, event))
            elif isinstance(event, d.PageAcknowledged):
                actions.append(self._follow_up(incident_id, "acknowledge", [event.page_id]))
            elif isinstance(event, d.IncidentResolved):
                incident, _ = await self._app.get(incident_id)
                actions.append(self._follow_up(incident_id, "resolve", list(incident.pages)))
        outcomes = await asyncio.gather(*actions, return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            # Redelivery retries the whole message; channels already recorded are skipped.
            raise failures[0]

    async def _notify(self, incident_id: str, event: d.PageRequested | d.TeamInformed) -> None:
        incident, _ = await self._app.get(incident_id)
        if incident.status not in d.OPEN:
            return
        notice_id = event.page_id if isinstance(event, d.PageRequested) else event.notice_id
        page = incident.pages.get(notice_id)
        if page is not None and (page.acknowledged_at or page.escalated):
            return
        done = incident.deliveries_of(notice_id)
        pending = [c for c in event.contacts if c.kind and c.kind not in done]
        note = _notification(incident, event, notice_id)
        await asyncio.gather(*(self._deliver(incident_id, c, note) for c in pending))

    async def _deliver(self, incident_id: str, contact: d.ContactPoint, note: Notification) -> None:
        """Sends on one channel and records its outcome as soon as that channel is done."""
        assert contact.kind is not None
        attempts, error = await self._notifiers.deliver(contact, note)
        await self._app.execute(
            incident_id,
            d.RecordDelivery(note.notice_id, contact.kind, attempts, error),
            command_id=f"delivery-{note.notice_id}-{contact.kind.value}",
            actor="dispatcher",
        )

    async def _follow_up(self, incident_id: str, action: str, page_ids: Sequence[str]) -> None:
        """Tells PagerDuty a team's page was acknowledged or the incident resolved (best effort).

        PagerDuty holds one alert per incident and team (the dedup_key), triggered by whichever
        of the team's pages had a PagerDuty contact: an acknowledgement of any of the team's
        pages (an escalated one, another member's) goes to every routing key the team was paged
        on, once each.
        """
        incident, _ = await self._app.get(incident_id)
        teams = {incident.pages[p].team_id for p in page_ids if p in incident.pages}
        sends = []
        notified: set[tuple[str, str]] = set()
        for page in incident.pages.values():
            if page.team_id not in teams:
                continue
            note = Notification(
                page.page_id,
                incident_id,
                action,
                incident.title,
                incident.type,
                incident.level.value,
                page.team_id,
                page.member_id,
                page.engagement.value,
                incident.drill,
            )
            for contact in page.contacts:
                key = (page.team_id, contact.address)
                if contact.kind is d.ContactKind.PAGERDUTY and key not in notified:
                    notified.add(key)
                    sends.append(self._notifiers.deliver(contact, note))
        await asyncio.gather(*sends)


def _notification(
    incident: d.Incident, event: d.PageRequested | d.TeamInformed, notice_id: str
) -> Notification:
    paged = isinstance(event, d.PageRequested)
    engagement = event.engagement.value if isinstance(event, d.PageRequested) else "grey"
    return Notification(
        notice_id=notice_id,
        incident_id=incident.incident_id,
        action="trigger" if paged else "inform",
        title=incident.title,
        incident_type=incident.type,
        level=incident.level.value,
        team_id=event.team_id,
        member_id=event.member_id,
        engagement=engagement,
        drill=incident.drill,
        ack_due_at=event.ack_due_at if isinstance(event, d.PageRequested) else None,
    )


@dataclass(frozen=True)
class SurgeAction:
    """What the surge detector decided for one key: declare a new incident or link a ticket."""

    surge_key: str
    incident_id: str
    declare: bool
    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]
    count: int


class SurgeDetector:
    """Counts complaint tickets per channel and per product in a sliding window (SQL); at the
    threshold declares one complaint-surge incident per key and links later complaints to it."""

    def __init__(
        self, app: IncidentApp, engine: Engine, *, threshold: int, window: timedelta
    ) -> None:
        self._app = app
        self._engine = engine
        self.threshold = threshold
        self.window = window

    async def handle(self, message: RecordedBatch) -> None:
        for envelope in message.batch.events:
            if envelope.type != TICKET_OPENED:
                continue
            opened = ticket_events.TicketOpened()
            envelope.payload.Unpack(opened)
            if opened.type != ticket_types.TICKET_TYPE_COMPLAINT:
                continue
            channel = ticket_types.Channel.Name(opened.channel).removeprefix("CHANNEL_").lower()
            keys = [f"channel:{channel}"]
            if opened.product:
                keys.append(f"product:{opened.product.strip().lower()[:100]}")
            at = from_timestamp(envelope.occurred_at)
            actions = await asyncio.to_thread(
                self.record, envelope.aggregate_id, opened.customer_id, keys, at
            )
            for action in actions:
                await self._act(action, envelope.event_id)

    def record(
        self, ticket_id: str, customer_id: str, keys: Sequence[str], at: datetime
    ) -> list[SurgeAction]:
        """Records one complaint and returns what to do, in one SQL transaction."""
        actions = []
        with Session(self._engine) as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert_fn = insert_for(dialect)
            for key in keys:
                session.execute(
                    insert_fn(surge_complaints)
                    .values(
                        ticket_id=ticket_id, surge_key=key, customer_id=customer_id, opened_at=at
                    )
                    .on_conflict_do_nothing()
                )
                derived = (
                    "I-surge-" + hashlib.sha256(f"{key}|{ticket_id}".encode()).hexdigest()[:16]
                )
                current = session.execute(
                    select(surge_incidents).where(surge_incidents.c.surge_key == key)
                ).first()
                # An open incident raised by another ticket: link. Raised by this very ticket
                # (a redelivery after a crash): declare again, idempotently, by the same id.
                if current is not None and current.open and current.incident_id != derived:
                    actions.append(
                        SurgeAction(
                            key, current.incident_id, False, (ticket_id,), (customer_id,), 0
                        )
                    )
                    continue
                recent = session.execute(
                    select(surge_complaints.c.ticket_id, surge_complaints.c.customer_id)
                    .where(
                        surge_complaints.c.surge_key == key,
                        surge_complaints.c.opened_at > at - self.window,
                        surge_complaints.c.opened_at <= at,
                    )
                    .order_by(surge_complaints.c.opened_at)
                ).all()
                if len(recent) < self.threshold:
                    continue
                incident_id = (
                    "I-surge-" + hashlib.sha256(f"{key}|{ticket_id}".encode()).hexdigest()[:16]
                )
                values = {"surge_key": key, "incident_id": incident_id, "open": True}
                session.execute(
                    insert_fn(surge_incidents)
                    .values(**values)
                    .on_conflict_do_update(index_elements=["surge_key"], set_=values)
                )
                actions.append(
                    SurgeAction(
                        key,
                        incident_id,
                        True,
                        tuple(row.ticket_id for row in recent),
                        tuple(dict.fromkeys(row.customer_id for row in recent)),
                        len(recent),
                    )
                )
        return actions

    async def _act(self, action: SurgeAction, source_event_id: str) -> None:
        if not action.declare:
            await self._app.execute(
                action.incident_id,
                d.LinkTickets(action.ticket_ids, action.customer_ids),
                command_id=f"link-{action.incident_id}-{action.ticket_ids[0]}",
                actor="surge-detector",
                causation_id=source_event_id,
            )
            return
        minutes = int(self.window.total_seconds() // 60)
        what = action.surge_key.replace(":", " ")
        command = d.DeclareIncident(
            incident_id=action.incident_id,
            type=SURGE_TYPE,
            title=f"Complaint surge on {what}: {action.count} complaints in {minutes} min",
            source=d.Source.TICKET_SURGE,
            factors=d.RiskFactors(
                users_affected=len(action.customer_ids),
                core_system=0.3,
                elapsed_minutes=float(minutes),
                exposure=0.3,
            ),
            ticket_ids=action.ticket_ids,
            customer_ids=action.customer_ids,
            surge_key=action.surge_key,
        )
        await self._app.execute(
            action.incident_id,
            command,
            command_id=f"surge-{action.incident_id}",
            actor="surge-detector",
            causation_id=source_event_id,
        )
        log.warning("complaint surge declared", extra={"surge_key": action.surge_key})
