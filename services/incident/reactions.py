"""Incident reactions: deliver pages and notices; declare incidents from complaint surges.

The surge detector is a projection of ticketing's stream (its counts are written with the
checkpoint) whose decisions are due timers; SurgeActions fires them as idempotent commands."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from careops_eventstore.codec import DecodedEvent, from_timestamp
from careops_eventstore.model import RecordedBatch
from careops_eventstore.sqlstate import insert_for
from careops_eventstore.timers import DueTimer, cancel, schedule
from careops_published import ticketing as tk
from careops_published.codec import view_codec
from sqlalchemy import Connection, Engine, Table, select

from incident import domain as d
from incident.application import CODEC, IncidentApp
from incident.notifiers import Notification, Notifiers
from incident.readmodels import incidents, surge_complaints, surge_incidents

log = logging.getLogger(__name__)

SURGE_TYPE = "complaint_surge"


# A message's notices are recorded in one command when they are done within this many seconds
# of the first one (a burst's usual case: two appends per declaration instead of one per
# notice); a notice still sending then (a channel retrying, or hanging until its timeout) is
# recorded when it is done, so a failure's next channel never waits longer on another's.
RECORD_WINDOW_SECONDS = 5.0


class PageDispatcher:
    """Delivers each page and notice to every contact point, concurrently, and records the
    outcomes of a message's notices together (RecordDeliveryBatch) once their channels are done.

    Idempotent: a channel whose outcome is on the log is not sent again, pages of resolved
    incidents and acknowledged pages are not sent at all. At least once: a message is acked
    only after its outcomes are recorded, so a page whose process died before (kill -9) is
    sent again when the log redelivers the message, marked as a retry (see Notification.retry)
    with the same idempotency key (webhook) or dedup_key (PagerDuty).
    """

    # The event types the pager acts on: a message with none of them (its own records of
    # outcomes, most of all) is acked by the runner unparsed.
    EVENT_TYPES = CODEC.only(
        d.PageRequested, d.TeamInformed, d.PageContactsDue, d.PageAcknowledged, d.IncidentResolved
    ).type_names

    def __init__(
        self,
        app: IncidentApp,
        notifiers: Notifiers,
        *,
        record_window: float = RECORD_WINDOW_SECONDS,
    ) -> None:
        self._app = app
        self._notifiers = notifiers
        self._record_window = record_window

    async def handle(self, message: RecordedBatch) -> None:
        """Acts on every page and notice of the message at once: one team's slow or failing
        channel must not hold back another team's page."""
        sends = []
        actions = []
        # Delivered before (lost with a killed process, or failed): what it sent may arrive
        # twice, so every send says it may be a retry, and the state is read from the log.
        retry = message.deliveries > 1
        at_least = 0 if retry else message.sequence
        decoded_batch = CODEC.decode_batch(message.batch)
        if not decoded_batch:
            return
        # One message, one command: every event of it is of the same incident.
        incident_id = decoded_batch[0].envelope.aggregate_id
        if not retry:
            self._app.observe(incident_id, message, decoded_batch)
        for decoded in decoded_batch:
            event = decoded.event
            if isinstance(event, d.PageRequested | d.TeamInformed | d.PageContactsDue):
                sends.append(self._send(incident_id, event, retry=retry, at_least=at_least))
            elif isinstance(event, d.PageAcknowledged):
                actions.append(self._follow_up(incident_id, "acknowledge", [event.page_id]))
            elif isinstance(event, d.IncidentResolved):
                incident, _ = await self._app.get(incident_id)
                actions.append(self._follow_up(incident_id, "resolve", list(incident.pages)))
        outcomes = await asyncio.gather(
            self._record(incident_id, sends), *actions, return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            # Redelivery retries the whole message; channels already recorded are skipped.
            raise failures[0]

    async def _record(
        self, incident_id: str, sends: Sequence[Awaitable[d.RecordDeliveries | None]]
    ) -> None:
        """Records the notices' outcomes as their sends finish: those done within the record
        window of the first in one command, any later ones as they are done. Raises the first
        send's failure after recording the others."""
        pending = {asyncio.ensure_future(send) for send in sends}
        failures: list[BaseException] = []
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if pending:
                    more, pending = await asyncio.wait(pending, timeout=self._record_window)
                    done |= more
                # Recording is bookkeeping: under a burst, other notices' first pages go first.
                await self._notifiers.first_sends.behind()
                done |= {task for task in pending if task.done()}
                pending -= done
                records = []
                for task in done:
                    if (error := task.exception()) is not None:
                        failures.append(error)
                    elif (record := task.result()) is not None:
                        records.append(record)
                if records:
                    await self._app.execute(
                        incident_id,
                        d.RecordDeliveryBatch(tuple(records)),
                        command_id=deliveries_command_id(records),
                        actor="dispatcher",
                    )
        finally:
            for task in pending:
                task.cancel()
        if failures:
            raise failures[0]

    async def _send(
        self,
        incident_id: str,
        event: d.PageRequested | d.TeamInformed | d.PageContactsDue,
        *,
        retry: bool,
        at_least: int,
    ) -> d.RecordDeliveries | None:
        """Sends the notice on its pending channels concurrently; returns their outcomes to
        record (None: nothing was sent).

        The state is this replica's cached one when it is at least as recent as the message
        (on a first delivery, usually: this replica appended it), so a burst does not read
        every incident back from the log once per notice."""
        incident, _ = await self._app.get(incident_id, at_least=at_least)
        if incident.status not in d.OPEN:
            return None
        notice_id = event.notice_id if isinstance(event, d.TeamInformed) else event.page_id
        page = incident.pages.get(notice_id)
        if page is not None and (page.acknowledged_at or page.escalated):
            return None
        done = incident.deliveries_of(notice_id)
        pending = [c for c in event.contacts if c.kind and c.kind not in done]
        if not pending:
            return None
        if isinstance(event, d.PageContactsDue):
            # A page's delayed contacts: the page as it was requested, sent on further channels.
            if page is None:
                return None
            note = _page_notification(incident, page)
        else:
            note = _notification(incident, event, notice_id)
        note = replace(note, retry=retry)
        # The notice's first channel ahead of every notice's other channels (FirstSends).
        sent = await asyncio.gather(
            *(self._notifiers.deliver(c, note, first=i == 0) for i, c in enumerate(pending))
        )
        outcomes = tuple(
            d.DeliveryOutcome(contact.kind, attempts, error)
            for contact, (attempts, error) in zip(pending, sent, strict=True)
            if contact.kind is not None
        )
        return d.RecordDeliveries(notice_id, outcomes)

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


def deliveries_command_id(records: Sequence[d.RecordDeliveries]) -> str:
    """Returns the id a batch of outcomes is recorded under: the same for the same notices and
    channels (a redelivered message whose records were appended records nothing twice)."""
    keys = sorted(
        f"{record.notice_id}-" + "-".join(sorted(o.kind.value for o in record.outcomes))
        for record in records
    )
    if len(keys) == 1:
        return f"deliveries-{keys[0]}"
    return "deliveries-" + hashlib.sha256("|".join(keys).encode()).hexdigest()[:32]


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


def _page_notification(incident: d.Incident, page: d.PageState) -> Notification:
    return Notification(
        notice_id=page.page_id,
        incident_id=incident.incident_id,
        action="trigger",
        title=incident.title,
        incident_type=incident.type,
        level=incident.level.value,
        team_id=page.team_id,
        member_id=page.member_id,
        engagement=page.engagement.value,
        drill=incident.drill,
        ack_due_at=page.ack_due_at,
    )


# Surge timers are due at once: their due time only orders them by stream position (a link
# fires after the declaration it links to), under any clock a test or replica runs on.
_SURGE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SURGE_KINDS = ("surge_declare", "surge_link")
SURGE_CODEC = view_codec(tk.TicketOpened)


def _surge_incident_id(key: str, ticket_id: str) -> str:
    return "I-surge-" + hashlib.sha256(f"{key}|{ticket_id}".encode()).hexdigest()[:16]


class SurgeProjection:
    """Counts complaint tickets per channel and per product in a sliding window; at the
    threshold it decides one complaint-surge incident per key and links later complaints to it.

    A projection of ticketing's stream: the counts, the decision and the command to append (a
    due timer, see SurgeActions) are written in the batch's transaction with the checkpoint, so
    a redelivered ticket decides nothing twice."""

    name = "incident_surge"
    tables: tuple[Table, ...] = (surge_complaints, surge_incidents)

    def __init__(self, *, threshold: int, window: timedelta) -> None:
        self.threshold = threshold
        self.window = window

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        opened = event.event
        if not isinstance(opened, tk.TicketOpened) or opened.type != "complaint":
            return
        keys = [f"channel:{opened.channel or 'unspecified'}"]
        if opened.product:
            keys.append(f"product:{opened.product.strip().lower()[:100]}")
        envelope = event.envelope
        at = from_timestamp(envelope.occurred_at)
        due_at = _SURGE_EPOCH + timedelta(microseconds=position)
        for key in keys:
            action = self._record(connection, key, envelope.aggregate_id, opened.customer_id, at)
            if action is not None:
                schedule(connection, action.timer(due_at, envelope.event_id, self.window))

    def _record(
        self, connection: Connection, key: str, ticket_id: str, customer_id: str, at: datetime
    ) -> SurgeAction | None:
        """Records one complaint under `key`; returns what to do about it, if anything."""
        insert_fn = insert_for(connection.dialect.name)
        connection.execute(
            insert_fn(surge_complaints)
            .values(ticket_id=ticket_id, surge_key=key, customer_id=customer_id, opened_at=at)
            .on_conflict_do_nothing()
        )
        current = connection.execute(
            select(surge_incidents).where(surge_incidents.c.surge_key == key)
        ).first()
        if current is not None and current.open:
            return SurgeAction(key, current.incident_id, False, (ticket_id,), (customer_id,), 0)
        recent = connection.execute(
            select(surge_complaints.c.ticket_id, surge_complaints.c.customer_id)
            .where(
                surge_complaints.c.surge_key == key,
                surge_complaints.c.opened_at > at - self.window,
                surge_complaints.c.opened_at <= at,
            )
            .order_by(surge_complaints.c.opened_at)
        ).all()
        if len(recent) < self.threshold:
            return None
        incident_id = _surge_incident_id(key, ticket_id)
        # Replayed after a rebuild, the incident this decided may be over already.
        ended = connection.execute(
            select(incidents.c.resolved_at).where(incidents.c.incident_id == incident_id)
        ).scalar()
        values = {"surge_key": key, "incident_id": incident_id, "open": ended is None}
        connection.execute(
            insert_fn(surge_incidents)
            .values(**values)
            .on_conflict_do_update(index_elements=["surge_key"], set_=values)
        )
        if ended is not None:
            return None
        return SurgeAction(
            key,
            incident_id,
            True,
            tuple(row.ticket_id for row in recent),
            tuple(dict.fromkeys(row.customer_id for row in recent)),
            len(recent),
        )


@dataclass(frozen=True)
class SurgeAction:
    """What the surge projection decided for one key: declare a new incident or link a ticket."""

    surge_key: str
    incident_id: str
    declare: bool
    ticket_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]
    count: int

    @property
    def command_id(self) -> str:
        """Returns the id the command is appended under (once, however often it fires)."""
        if self.declare:
            return f"surge-{self.incident_id}"
        return f"link-{self.incident_id}-{self.ticket_ids[0]}"

    def timer(self, due_at: datetime, source_event_id: str, window: timedelta) -> DueTimer:
        """Returns the due timer that appends this action's command."""
        data = {
            **asdict(self),
            "minutes": int(window.total_seconds() // 60),
            "causation_id": source_event_id,
        }
        kind = SURGE_KINDS[0] if self.declare else SURGE_KINDS[1]
        return DueTimer(self.command_id, self.incident_id, kind, due_at, data)


class SurgeActions:
    """Fires due timers: surge timers append their command (by the timer's id, so at most once)
    and are then deleted; any other timer goes to `fallback` (the incident app's)."""

    def __init__(
        self, app: IncidentApp, engine: Engine, fallback: Callable[[DueTimer], Awaitable[None]]
    ) -> None:
        self._app = app
        self._engine = engine
        self._fallback = fallback

    async def fire(self, timer: DueTimer) -> None:
        if timer.kind not in SURGE_KINDS:
            await self._fallback(timer)
            return
        data = timer.data
        action = SurgeAction(
            data["surge_key"],
            data["incident_id"],
            data["declare"],
            tuple(data["ticket_ids"]),
            tuple(data["customer_ids"]),
            data["count"],
        )
        try:
            await self._act(action, data["minutes"], data["causation_id"])
        except (d.InvalidCommand, d.IllegalTransition):
            # The command, not the moment, is wrong: firing again cannot help. (NotFound, a link
            # fired before its declaration was appended, is retried with the other failures.)
            log.error("surge command refused", exc_info=True, extra={"timer": timer.timer_id})
        await asyncio.to_thread(self._done, timer.timer_id)

    def _done(self, timer_id: str) -> None:
        with self._engine.begin() as connection:
            cancel(connection, timer_id)

    async def _act(self, action: SurgeAction, minutes: int, source_event_id: str) -> None:
        if not action.declare:
            await self._app.execute(
                action.incident_id,
                d.LinkTickets(action.ticket_ids, action.customer_ids),
                command_id=action.command_id,
                actor="surge-detector",
                causation_id=source_event_id,
            )
            return
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
            command_id=action.command_id,
            actor="surge-detector",
            causation_id=source_event_id,
        )
        log.warning("complaint surge declared", extra={"surge_key": action.surge_key})
