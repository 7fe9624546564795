"""Telling customers about incidents (docs/incidents.md, "Telling customers").

Incident decides (CustomersNotificationDecided on CAREOPS_INCIDENT: whom, and the message in
Chinese and English); customer-profile, which alone can open the customers' sealed contact data,
delivers: it resolves whom (the named customers, the owners of the named tickets, the customers
of the named tiers), skips the erased, sends each the message of its locale by e-mail, and
records CustomerNotified on the customer (delivered, or the error), which the 360 timeline shows.
A redelivered decision sends nothing twice: a customer's notification is recorded once, and one
already recorded is not sent again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from careops_eventstore.model import RecordedBatch
from careops_platform import registry
from careops_platform.collectors import preinitialise
from careops_platform.mail import Mailer
from careops_published import incident as inc
from careops_published.codec import view_codec
from prometheus_client import Counter
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from customer import domain as d
from customer import readmodels
from customer.application import STREAM, CustomerApp
from customer.projections import CustomerProjection, TicketFactsProjection

log = logging.getLogger(__name__)

DECIDED_CODEC = view_codec(inc.CustomersNotificationDecided)
EMAIL = "email"
OUTCOMES = ("delivered", "failed", "no_email", "erased")
NOTIFICATIONS = Counter(
    "careops_customer_incident_notices_total",
    "Customers told about an incident, by outcome (delivered, failed, no_email, erased: skipped).",
    ["outcome"],
)
preinitialise(NOTIFICATIONS, OUTCOMES)

WaitFor = Callable[[str, int, float], Awaitable[bool]]


def language_of(locale: str) -> str:
    """Returns `en` for an English locale, else `zh` (the source documents' language)."""
    return "en" if locale.lower().startswith("en") else "zh"


def notice_command_id(notification_id: str, customer_id: str) -> str:
    """The id of recording one customer's notice: one per decision and customer."""
    return f"notice-{notification_id}-{customer_id}"


@dataclass(frozen=True)
class Audience:
    """Whom a decision reaches, in a stable order (each once)."""

    customer_ids: tuple[str, ...]


def audience(
    *,
    session: Session,
    customer_ids: Sequence[str],
    ticket_ids: Sequence[str],
    tiers: Sequence[str],
) -> Audience:
    """Returns the named customers, the owners of the named tickets and the (not erased)
    customers of the named tiers, each once, in that order."""
    found = list(customer_ids)
    if ticket_ids:
        owners = select(readmodels.tickets.c.customer_id).where(
            readmodels.tickets.c.ticket_id.in_(ticket_ids)
        )
        found += sorted(session.execute(owners).scalars())
    if tiers:
        table = readmodels.customers
        members = (
            select(table.c.customer_id)
            .where(table.c.tier.in_(tiers), ~table.c.forgotten)
            .order_by(table.c.registered_sequence)
        )
        found += list(session.execute(members).scalars())
    return Audience(tuple(dict.fromkeys(customer for customer in found if customer)))


class IncidentNotices:
    """The reaction on incident's stream delivering CustomersNotificationDecided."""

    def __init__(
        self, app: CustomerApp, engine: Engine, mailer: Mailer, wait_for: WaitFor, *, wait: float
    ) -> None:
        self._app = app
        self._engine = engine
        self._mailer = mailer
        self._wait_for = wait_for
        self._wait = wait

    async def handle(self, message: RecordedBatch) -> None:
        for item in DECIDED_CODEC.decode_batch(message.batch):
            if isinstance(item.event, inc.CustomersNotificationDecided):
                await self.deliver(
                    item.envelope.aggregate_id, item.event, causation_id=item.envelope.event_id
                )

    async def _caught_up(self) -> None:
        """Waits (bounded) until the tickets and customers read models hold what the log held
        when the decision arrived: the owners and tiers are read as of then, or later."""
        store = self._app.store
        for name, stream in (
            (TicketFactsProjection.name, registry.TICKETING.name),
            (CustomerProjection.name, STREAM.name),
        ):
            last = await store.last_sequence(stream)
            if last and not await self._wait_for(name, last, self._wait):
                log.warning("read model behind for incident notices", extra={"projection": name})

    def _audience(self, decided: inc.CustomersNotificationDecided) -> Audience:
        with Session(self._engine) as session:
            return audience(
                session=session,
                customer_ids=decided.customer_ids,
                ticket_ids=decided.ticket_ids,
                tiers=decided.segments,
            )

    async def deliver(
        self, incident_id: str, decided: inc.CustomersNotificationDecided, *, causation_id: str
    ) -> None:
        """Tells every customer of the decision's audience once."""
        await self._caught_up()
        reached = await asyncio.to_thread(self._audience, decided)
        for customer_id in reached.customer_ids:
            await self._tell(incident_id, decided, customer_id, causation_id)

    async def _tell(
        self,
        incident_id: str,
        decided: inc.CustomersNotificationDecided,
        customer_id: str,
        causation_id: str,
    ) -> None:
        try:
            state, _ = await self._app.get(customer_id)
        except d.CustomerNotFound:
            log.info("incident notice for an unknown customer", extra={"customer_id": customer_id})
            return
        if state.forgotten:  # an erased customer is never told (nor anything recorded)
            NOTIFICATIONS.labels("erased").inc()
            return
        if decided.notification_id in state.notifications:
            return  # told already (a redelivered decision)
        language = language_of(state.locale)
        personal = await asyncio.to_thread(self._app.open_personal, customer_id, state.personal)
        address = personal.email if personal is not None else ""
        if personal is None:  # erased meanwhile, or the key is unreadable: never sent
            NOTIFICATIONS.labels("erased").inc()
            return
        if not address:
            error, outcome = "no e-mail address", "no_email"
        else:
            subject, body = (
                (decided.subject_en, decided.body_en)
                if language == "en"
                else (decided.subject, decided.body)
            )
            error = await self._mailer.send(address, subject, body, language=language)
            outcome = "failed" if error else "delivered"
        command = d.RecordNotification(
            incident_id=incident_id,
            notification_id=decided.notification_id,
            template_id=decided.template_id,
            statement_version=decided.statement_version,
            channel=EMAIL,
            language=language,
            error=error,
        )
        try:
            await self._app.record_notification(
                customer_id,
                command,
                command_id=notice_command_id(decided.notification_id, customer_id),
                causation_id=causation_id,
            )
        except d.IllegalTransition:  # erased while the message was on its way
            log.info(
                "customer erased during an incident notice", extra={"customer_id": customer_id}
            )
            return
        NOTIFICATIONS.labels(outcome).inc()
