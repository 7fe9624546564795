"""The use cases OpenTicket and AssignTicket run, on the in-memory event store (no NATS, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import careops_sla
import pytest
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.contacts import contact_digest
from careops_platform.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from careops_platform.identity import Principal

from ticketing import domain
from ticketing.application import (
    Assignment,
    CustomerClaim,
    CustomerLookup,
    TicketingApp,
    Workload,
    Workloads,
    sla_snapshots,
)

KEY = b"k" * 32
OPENED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    customer_id: str
    tier: str


class FakeDirectory:
    """The customer directory as a dict keyed like readmodels.KnownCustomers' lookups."""

    def __init__(self, entries: dict[tuple[str, str, str], Entry]) -> None:
        self.entries = entries
        self.lookups: list[tuple[str, str, str]] = []

    async def find(
        self, *, customer_id: str = "", kind: str = "", digest: str = ""
    ) -> Entry | None:
        self.lookups.append((customer_id, kind, digest))
        return self.entries.get((customer_id, kind, digest))


def lookup(entries: dict[tuple[str, str, str], Entry] | None = None) -> CustomerLookup:
    return CustomerLookup(FakeDirectory(entries or {}), hash_key=KEY)


async def test_a_known_customer_id_gets_its_computed_tier_not_the_requested_one() -> None:
    customers = lookup({("C1", "", ""): Entry("C1", "high_value")})
    claim = CustomerClaim(customer_id=" C1 ", tier=domain.CustomerTier.REGULAR)
    assert await customers.resolve(claim) == ("C1", domain.CustomerTier.HIGH_VALUE)


async def test_an_unknown_customer_id_keeps_the_requested_tier() -> None:
    claim = CustomerClaim(customer_id="C9", tier=domain.CustomerTier.POTENTIAL)
    assert await lookup().resolve(claim) == ("C9", domain.CustomerTier.POTENTIAL)


async def test_a_contact_finds_the_customer_by_its_keyed_hash() -> None:
    digest = contact_digest(KEY, "email", "Ann@Example.com")
    customers = lookup({("", "email", digest): Entry("C2", "regular")})
    claim = CustomerClaim(email="ann@example.com")
    assert await customers.resolve(claim) == ("C2", domain.CustomerTier.REGULAR)


async def test_an_unknown_contact_without_an_id_is_invalid_on_that_contact() -> None:
    with pytest.raises(InvalidArgument) as raised:
        await lookup().resolve(CustomerClaim(phone="+8613800138000"))
    assert raised.value.message == "no known customer has this contact; give customer_id"
    assert [v.field for v in raised.value.violations] == ["contact_phone"]


async def test_a_malformed_contact_is_invalid_before_any_lookup() -> None:
    directory = FakeDirectory({})
    with pytest.raises(InvalidArgument) as raised:
        await CustomerLookup(directory, hash_key=KEY).resolve(CustomerClaim(phone="12"))
    assert [v.field for v in raised.value.violations] == ["contact_phone"]
    assert directory.lookups == []


async def test_no_id_and_no_contact_is_an_anonymous_ticket_with_the_requested_tier() -> None:
    claim = CustomerClaim(tier=domain.CustomerTier.LOW_FREQUENCY)
    assert await lookup().resolve(claim) == ("", domain.CustomerTier.LOW_FREQUENCY)


async def opened(
    agents: list[domain.Agent], channel: domain.Channel = domain.Channel.EMAIL
) -> tuple[TicketingApp, str]:
    app = TicketingApp(
        store=InMemoryEventStore(),
        policy=careops_sla.load_policy(None),
        agents=agents,
        clock=lambda: OPENED,
    )
    await app.provision()
    await app.seed_agents(directory_empty=True)
    command = domain.OpenTicket(
        ticket_id="T1",
        customer_id="C1",
        channel=channel,
        type=domain.TicketType.FAULT,
        priority=domain.Priority.NORMAL,
        subject="broken",
    )
    await app.execute("T1", command, command_id="open-T1")
    return app, "T1"


def no_load(app: TicketingApp) -> Workloads:
    """The seed agents as the directory holds them, none of them with a ticket yet."""

    async def workload() -> Workload:
        agents = [(await app.agent(agent.agent_id))[0].routed() for agent in app.seed]
        return Workload(agents, {}, {})

    return workload


async def test_auto_assignment_takes_the_best_suggestion_and_says_why() -> None:
    app, ticket_id = await opened([domain.Agent("a1", frozenset({"fault", "email"}))])
    command = await Assignment(app, no_load(app)).command(ticket_id, "")
    assert command.agent_id == "a1"
    assert command.suggested
    assert command.reason == "skills email, fault; spare 10 on email; 0/10 open"


async def test_a_named_agent_is_assigned_as_asked() -> None:
    app, ticket_id = await opened([domain.Agent("a7", frozenset({"return", "chat"}))])
    command = await Assignment(app, no_load(app)).command(ticket_id, "a7")
    assert command == domain.AssignTicket(agent_id="a7")


async def test_assigning_to_an_agent_not_in_the_directory_is_a_failed_precondition() -> None:
    app, ticket_id = await opened([])
    with pytest.raises(FailedPrecondition, match="agent a7 is not in the directory"):
        await Assignment(app, no_load(app)).command(ticket_id, "a7")


async def test_auto_assignment_without_any_agent_is_a_failed_precondition() -> None:
    app, ticket_id = await opened([])
    with pytest.raises(FailedPrecondition, match="no agent can take ticket T1"):
        await Assignment(app, no_load(app)).command(ticket_id, "")


async def test_suggestions_of_an_unknown_ticket_are_not_found() -> None:
    app, _ = await opened([])
    with pytest.raises(domain.TicketNotFound):
        await Assignment(app, no_load(app)).suggestions("T404")


async def test_the_seed_is_put_once_and_skills_come_from_the_log() -> None:
    app, _ = await opened([domain.Agent("a1", frozenset({"fault", "email", "senior"}), 4)])
    assert await app.skills_of("a1") == frozenset({"fault", "email", "senior"})
    profile, _version = await app.agent("a1")
    assert profile.availability is domain.Availability.ONLINE
    assert profile.channels == (domain.ChannelCapacity(domain.Channel.EMAIL, 4),)
    # A second start puts nothing, even told the directory read model is empty.
    assert await app.seed_agents(directory_empty=True) == 0
    assert await app.skills_of("stranger") == frozenset()


async def test_an_agent_sets_only_their_own_availability() -> None:
    app, _ = await opened(
        [domain.Agent("a1", frozenset({"fault"})), domain.Agent("a2", frozenset())]
    )
    offline = domain.SetAvailability(domain.Availability.OFFLINE)
    me = Principal("a1", frozenset({"agent"}), "tests")
    result = await app.set_availability("a1", offline, command_id="c1", actor="a1", caller=me)
    assert result.state.availability is domain.Availability.OFFLINE
    with pytest.raises(PermissionDenied, match="agent.set_availability"):
        await app.set_availability("a2", offline, command_id="c2", actor="a1", caller=me)
    boss = Principal("s1", frozenset({"supervisor"}), "tests")
    result = await app.set_availability("a2", offline, command_id="c3", actor="s1", caller=boss)
    assert result.state.availability is domain.Availability.OFFLINE
    with pytest.raises(domain.AgentNotFound):
        await app.set_availability("a9", offline, command_id="c4", actor="s1", caller=boss)


async def test_sla_clocks_are_read_as_of_the_given_instant_or_now() -> None:
    app, ticket_id = await opened([], channel=domain.Channel.CHAT)
    ticket, _ = await app.get(ticket_id)
    later = {s.clock: s for s in sla_snapshots(app, ticket, OPENED + timedelta(minutes=10))}
    first = later[domain.SlaClock.FIRST_RESPONSE]
    assert (first.consumed, first.running, first.target) == (
        timedelta(minutes=10),
        True,
        timedelta(minutes=30),
    )
    now = {s.clock: s for s in sla_snapshots(app, ticket)}
    assert now[domain.SlaClock.FIRST_RESPONSE].consumed == timedelta(0)
