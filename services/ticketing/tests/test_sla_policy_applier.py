"""The SlaPolicyApplier reaction: a redelivered Put (a crash before the ack) applies nothing twice;
a revision older than the ticket's version is not applied (in-memory store, no NATS)."""

from __future__ import annotations

from collections.abc import Sequence

import careops_sla
import yaml
from careops_eventstore.memory import InMemoryEventStore

from tests.support import FakeClock
from ticketing import domain
from ticketing.application import STREAM, TicketingApp
from ticketing.reactions import SlaPolicyApplier

DEFAULT = careops_sla.policy_text(None)


def document(version: str, email: str) -> str:
    data = yaml.safe_load(DEFAULT)
    data["version"] = version
    data["channels"]["email"]["first_response"] = email
    return yaml.safe_dump(data)


async def setup() -> tuple[TicketingApp, InMemoryEventStore, SlaPolicyApplier, list[str]]:
    store = InMemoryEventStore()
    app = TicketingApp(store=store, policy=careops_sla.default_policy(), clock=FakeClock())
    await app.provision()
    await app.seed_sla_policy(DEFAULT)
    opened: list[str] = []

    async def synced(_sequence: int) -> bool:
        return True

    async def active(after: int, limit: int) -> Sequence[tuple[str, int]]:
        return [(ticket, n) for n, ticket in enumerate(opened, 1) if n > after][:limit]

    return app, store, SlaPolicyApplier(app, synced=synced, active=active), opened


async def open_email(app: TicketingApp, opened: list[str], ticket_id: str) -> None:
    command = domain.OpenTicket(
        ticket_id, "C-1", domain.Channel.EMAIL, domain.TicketType.FAULT, domain.Priority.NORMAL, "x"
    )
    await app.execute(ticket_id, command, command_id=f"open-{ticket_id}")
    opened.append(ticket_id)


async def applied(store: InMemoryEventStore, ticket_id: str) -> int:
    messages = await store.read_subject(
        stream=STREAM.name, subject=f"careops.ticketing.ticket.{ticket_id}"
    )
    return sum(
        envelope.type.endswith("SlaPolicyApplied")
        for message in messages
        for envelope in message.batch.events
    )


async def test_a_redelivered_put_applies_nothing_twice() -> None:
    app, store, applier, opened = await setup()
    await open_email(app, opened, "T-1")
    await app.put_sla_policy(
        document("v2", "1h"), author="lead", command_id="put-2", apply_to_open=True
    )
    messages = await store.read_subject(stream=STREAM.name, subject=app.sla_book.subject)
    message = messages[-1]
    await applier.handle(message)
    await applier.handle(message)  # redelivered
    assert await applied(store, "T-1") == 1
    ticket, _ = await app.get("T-1")
    assert ticket.sla_policy_version == "v2"
    assert ticket.clocks[domain.SlaClock.FIRST_RESPONSE].target.total_seconds() == 3600


async def test_a_late_older_revision_does_not_move_a_ticket_back() -> None:
    app, store, applier, opened = await setup()
    await app.put_sla_policy(
        document("v2", "1h"), author="lead", command_id="put-2", apply_to_open=True
    )
    await app.put_sla_policy(document("v3", "2h"), author="lead", command_id="put-3")
    await open_email(app, opened, "T-3")  # under v3
    messages = await store.read_subject(stream=STREAM.name, subject=app.sla_book.subject)
    await applier.handle(messages[1])  # revision 2's Put, handled late
    assert await applied(store, "T-3") == 0
    assert (await app.get("T-3"))[0].sla_policy_version == "v3"
