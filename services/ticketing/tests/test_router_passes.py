"""Router passes coalesce: a trigger the read models had already passed when the last pass read
them starts no pass of its own; an agent going offline always gets its hand-back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from careops_eventstore.codec import EnvelopeContext
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.model import RecordedBatch
from careops_sla import default_policy
from prometheus_client import REGISTRY

from ticketing import domain
from ticketing.application import CODEC, STREAM, TicketingApp, Workload
from ticketing.domain.routing import Agent
from ticketing.reactions import Router, RouterReads
from ticketing.readmodels import WaitingTicket


class Reads:
    """Read models at a position the test moves; the queue is empty unless `queued` says how
    many tickets wait, and the directory is `agents` with `open_tickets` each."""

    def __init__(self, agents: Sequence[Agent] = (), open_tickets: int = 0, queued: int = 0):
        self.at = 0
        self.passes = 0
        self.handed_back: list[str] = []
        self.agents = list(agents)
        self.open_tickets = open_tickets
        self.queued = queued
        self.kinds_read: list[list[tuple[str, str]]] = []

    async def synced(self, sequence: int) -> bool:
        return self.at >= sequence

    async def workload(self) -> Workload:
        self.passes += 1
        loads = {agent.agent_id: self.open_tickets for agent in self.agents}
        return Workload(self.agents, loads, {})

    async def waiting(
        self, limit: int, kinds: Sequence[tuple[str, str]]
    ) -> Sequence[WaitingTicket]:
        """The queue holds `queued` email faults."""
        self.kinds_read.append(list(kinds))
        queued_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        queue = [
            WaitingTicket(f"T-{n}", "fault", "email", "normal", queued_at, n)
            for n in range(self.queued)
        ]
        return [w for w in queue if (w.type, w.channel) in kinds][:limit]

    async def waiting_count(self) -> int:
        return self.queued

    async def unstarted(self, agent_id: str) -> Sequence[str]:
        self.handed_back.append(agent_id)
        return []

    def reads(self) -> RouterReads:
        return RouterReads(
            synced=self.synced,
            workload=self.workload,
            waiting=self.waiting,
            waiting_count=self.waiting_count,
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


def queue_length() -> float:
    return REGISTRY.get_sample_value("careops_ticket_queue_length") or 0.0


@pytest.mark.parametrize(
    ("agents", "open_tickets"),
    [
        ((), 0),
        ((Agent("A-1", frozenset({"fault", "email"}), capacity=2, online=False),), 0),
        ((Agent("A-1", frozenset({"fault", "email"}), capacity=2),), 2),
    ],
    ids=["nobody", "offline", "at-capacity"],
)
async def test_with_no_room_anywhere_the_queue_is_counted_not_read(
    agents: Sequence[Agent], open_tickets: int
) -> None:
    state = Reads(agents, open_tickets, queued=742)
    router = Router(
        TicketingApp(store=InMemoryEventStore(), policy=default_policy()), state.reads()
    )
    assert await router.route(actor="tester", cause="1") == 742
    assert state.kinds_read == []
    assert queue_length() == 742


async def test_with_room_only_the_tickets_someone_can_take_are_read() -> None:
    # Room for faults by chat and returns by chat or phone: the queue's email faults wait.
    agents = [
        Agent("A-1", frozenset({"fault", "chat"}), capacity=3),
        Agent("A-2", frozenset({"return", "chat", "phone"}), capacity=5),
        Agent("A-3", frozenset({"fault", "email"}), capacity=3, online=False),
    ]
    state = Reads(agents, 1, queued=4)
    router = Router(
        TicketingApp(store=InMemoryEventStore(), policy=default_policy()), state.reads()
    )
    assert await router.route(actor="tester", cause="1") == 4
    assert [sorted(kinds) for kinds in state.kinds_read] == [
        [("fault", "chat"), ("return", "chat"), ("return", "phone")]
    ]
    assert queue_length() == 4
