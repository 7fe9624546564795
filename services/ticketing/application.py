"""Ticketing command handlers: load -> decide -> append (retrying on conflicts), and SLA timers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import get_args

from careops.ticketing.v1 import events_pb2
from careops_eventstore import EventStore
from careops_eventstore.aggregates import CommandResult
from careops_eventstore.application import ContextApplication, aggregate_kind, codec_of
from careops_eventstore.application import utc_now as utc_now  # re-exported for main.py and tests
from careops_eventstore.timers import DueTimer
from careops_platform import registry
from careops_platform.collectors import preinitialise
from careops_sla import SlaPolicy
from prometheus_client import Counter

from ticketing import domain

log = logging.getLogger(__name__)

STREAM = registry.TICKETING.spec()
SUBJECT_PREFIX = registry.TICKETING.prefix("ticket")
SLA_POLICY_KEY = "sla_policy"
ROUTING_RULE_KEY = "routing_rule"
ROUTING_RULE_VERSION = "skill-load-v1"

CODEC = codec_of(get_args(domain.TicketEvent), events_pb2)

TICKET = aggregate_kind(
    STREAM, SUBJECT_PREFIX, "ticket", initial=domain.initial, evolve=domain.evolve, codec=CODEC
)

OPENED = Counter(
    "careops_tickets_opened_total",
    "Tickets opened by channel and priority.",
    ["channel", "priority"],
)
TRANSITIONS = Counter("careops_ticket_events_total", "Ticket events appended by type.", ["event"])
SLA_EVENTS = Counter(
    "careops_sla_events_total",
    "SLA warnings and breaches by clock, kind, channel and priority.",
    ["clock", "kind", "channel", "priority"],
)
# Every series exists at 0 from the start, so an alert's increase() counts the first burst.
preinitialise(OPENED, domain.Channel, domain.Priority)
preinitialise(TRANSITIONS, (event.__name__ for event in get_args(domain.TicketEvent)))
preinitialise(SLA_EVENTS, domain.SlaClock, domain.SlaTimerKind, domain.Channel, domain.Priority)


class TicketingApp(ContextApplication[domain.Ticket]):
    """The ticketing use cases over an event store; every write goes through `execute`."""

    def __init__(
        self,
        *,
        store: EventStore,
        policy: SlaPolicy,
        agents: Sequence[domain.Agent] = (),
        clock: Callable[[], datetime] = utc_now,
        cache_size: int = 10_000,
    ) -> None:
        super().__init__(
            store=store, stream=STREAM, kind=TICKET, clock=clock, cache_size=cache_size
        )
        self.policy = policy
        self.agents = list(agents)

    async def execute(
        self,
        ticket_id: str,
        command: domain.Command,
        *,
        command_id: str,
        actor: str = "system",
        causation_id: str = "",
    ) -> CommandResult[domain.Ticket]:
        """Decides and appends one command against the ticket's current state."""
        now = self.clock()
        result = await self.run(
            ticket_id,
            lambda state: domain.decide(state, command, now=now, policy=self.policy),
            now=now,
            command_id=command_id,
            actor=actor,
            causation_id=causation_id,
            policy_versions=self._policy_versions(command),
            expect_new=isinstance(command, domain.OpenTicket),
        )
        self._count(result)
        return result

    def _policy_versions(self, command: domain.Command) -> dict[str, str]:
        versions = {SLA_POLICY_KEY: self.policy.version}
        if isinstance(command, domain.AssignTicket) and command.suggested:
            versions[ROUTING_RULE_KEY] = ROUTING_RULE_VERSION
        return versions

    def _count(self, result: CommandResult[domain.Ticket]) -> None:
        ticket = result.state
        for event in result.events:
            TRANSITIONS.labels(type(event).__name__).inc()
            if isinstance(event, domain.TicketOpened):
                OPENED.labels(event.channel.value, event.priority.value).inc()
            elif isinstance(event, domain.SlaWarningRaised | domain.SlaBreached):
                kind = "warning" if isinstance(event, domain.SlaWarningRaised) else "breach"
                SLA_EVENTS.labels(
                    event.clock.value, kind, ticket.channel.value, ticket.priority.value
                ).inc()
                log.warning(
                    "sla %s",
                    kind,
                    extra={"ticket_id": ticket.ticket_id, "clock": event.clock.value},
                )

    async def get(self, ticket_id: str) -> tuple[domain.Ticket, int]:
        """Returns the ticket as of the log's latest event and its version."""
        loaded = await self.repository.load(ticket_id, refresh=True)
        if not loaded.state.exists:
            raise domain.TicketNotFound(f"ticket {ticket_id} does not exist")
        return loaded.state, loaded.version

    def suggest(
        self, ticket: domain.Ticket, open_tickets: dict[str, int]
    ) -> list[domain.Suggestion]:
        """Ranks the configured agents for a ticket by skill and current load."""
        return domain.suggest_agents(ticket, self.agents, open_tickets)

    async def fire_timer(self, timer: DueTimer) -> None:
        """Fires one SLA deadline; the timer id is the command id, so it is appended once."""
        command = domain.FireSlaTimer(
            clock=domain.SlaClock(timer.data["clock"]), kind=domain.SlaTimerKind(timer.data["kind"])
        )
        await self.execute(
            timer.aggregate_id, command, command_id=timer.timer_id, actor="sla-timer"
        )


def load_agents(path: str | None) -> list[domain.Agent]:
    """Reads the agent directory (YAML `agents: [{id, skills, capacity}]`); None: the default."""
    import importlib.resources

    import yaml

    if path:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    else:
        text = importlib.resources.files("ticketing").joinpath("agents_default.yaml").read_text()
        data = yaml.safe_load(text) or {}
    agents = []
    for index, entry in enumerate(data.get("agents") or []):
        if not isinstance(entry, dict) or not entry.get("id"):
            raise ValueError(f"agents[{index}]: needs an id")
        capacity = int(entry.get("capacity", 10))
        if capacity < 1:
            raise ValueError(f"agents[{index}].capacity must be at least 1")
        agents.append(
            domain.Agent(str(entry["id"]), frozenset(map(str, entry.get("skills", []))), capacity)
        )
    return agents
