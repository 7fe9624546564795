"""Router passes coalesce: a trigger the read models had already passed when the last pass read
them starts no pass of its own; an agent going offline always gets its hand-back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from careops_eventstore.codec import EnvelopeContext
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.model import RecordedBatch
from careops_sla import default_policy
from prometheus_client import REGISTRY

from ticketing import domain
from ticketing.application import CODEC, STREAM, TicketingApp, Workload
from ticketing.reactions import Router, RouterReads
from ticketing.readmodels import WaitingTicket


class Reads:
    """Read models at a position the test moves; the queue is empty."""

    def __init__(self) -> None:
        self.at = 0
        self.passes = 0
        self.handed_back: list[str] = []

    async def synced(self, sequence: int) -> bool:
        return self.at >= sequence

    async def workload(self) -> Workload:
        self.passes += 1
        return Workload([], {}, {})

    async def waiting(self, _limit: int) -> Sequence[WaitingTicket]:
        return []

    async def unstarted(self, agent_id: str) -> Sequence[str]:
        self.handed_back.append(agent_id)
        return []

    def reads(self) -> RouterReads:
        return RouterReads(
            synced=self.synced,
            workload=self.workload,
            waiting=self.waiting,
            unstarted=self.unstarted,
            position=lambda: self.at,
        )


def message(sequence: int, event: Any, aggregate: str = "T-1") -> RecordedBatch:
    context = EnvelopeContext(aggregate, "ticket", uuid.uuid4().hex, datetime.now(UTC))
    return RecordedBatch(STREAM.name, "s", sequence, CODEC.encode([event], context))


def passes(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("careops_ticket_router_passes_total", labels) or 0.0


async def test_triggers_a_pass_already_read_past_are_coalesced() -> None:
    state = Reads()
    router = Router(
        TicketingApp(store=InMemoryEventStore(), policy=default_policy()), state.reads()
    )
    resolved = domain.TicketResolved(resolution="done", first_contact=True)
    coalesced = passes("coalesced")
    state.at = 3  # the read models already hold 1..3 when the first trigger is handled
    for sequence in (1, 2, 3):
        await router.handle(message(sequence, resolved))
    assert state.passes == 1
    assert passes("coalesced") - coalesced == 2
    state.at = 4
    await router.handle(message(4, resolved))  # past the last pass's reads: a pass of its own
    assert state.passes == 2 and router.handled == 4


async def test_going_offline_hands_back_even_when_covered() -> None:
    state = Reads()
    router = Router(
        TicketingApp(store=InMemoryEventStore(), policy=default_policy()), state.reads()
    )
    state.at = 2
    await router.handle(message(1, domain.TicketResolved(resolution="r", first_contact=False)))
    offline = domain.AgentAvailabilityChanged(domain.Availability.OFFLINE)
    await router.handle(message(2, offline, aggregate="A-7"))
    assert state.handed_back == ["A-7"] and state.passes == 2
