"""Ticketing command handlers: load -> decide -> append (retrying on conflicts), and SLA timers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, get_args

from careops.ticketing.v1 import events_pb2
from careops_eventstore import EventStore
from careops_eventstore.aggregates import (
    AggregateKind,
    AggregateRepository,
    CommandExecutor,
    CommandResult,
)
from careops_eventstore.application import ContextApplication, aggregate_kind, codec_of
from careops_eventstore.application import utc_now as utc_now  # re-exported for main.py and tests
from careops_eventstore.timers import DueTimer
from careops_platform import registry
from careops_platform.collectors import preinitialise
from careops_platform.contacts import InvalidContact, contact_digest
from careops_platform.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
)
from careops_platform.identity import Principal
from careops_sla import SlaPolicy
from prometheus_client import Counter

from ticketing import domain
from ticketing.config import load_agents as load_agents

log = logging.getLogger(__name__)

STREAM = registry.TICKETING.spec()
SUBJECT_PREFIX = registry.TICKETING.prefix("ticket")
SLA_POLICY_KEY = "sla_policy"
ROUTING_RULE_KEY = "routing_rule"
ROUTING_RULE_VERSION = "skill-load-v1"

# The ticket's events, then the macros' (one stream).
CODEC = codec_of((*get_args(domain.TicketEvent), *get_args(domain.MacroEvent)), events_pb2)

TICKET = aggregate_kind(
    STREAM, SUBJECT_PREFIX, "ticket", initial=domain.initial, evolve=domain.evolve, codec=CODEC
)

MACRO: AggregateKind[domain.Macro] = aggregate_kind(
    STREAM,
    registry.TICKETING.prefix("macro"),
    "macro",
    initial=domain.initial_macro,
    evolve=domain.evolve_macro,
    codec=CODEC,
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

# The commands rule 1 of docs/permissions.md narrows, by the permission (permissions.yaml) their
# RPC takes; a refusal names it. Opening and closing a ticket are held by the table alone.
WORKS_TICKET: dict[type[domain.Command], str] = {
    domain.AddReply: "ticket.reply",
    domain.ChangePriority: "ticket.change_priority",
    domain.EscalateTicket: "ticket.escalate",
    domain.HoldTicket: "ticket.hold",
    domain.ResumeTicket: "ticket.resume",
    domain.ResolveTicket: "ticket.resolve",
    domain.ReopenTicket: "ticket.reopen",
}
ASSIGN = "ticket.assign"
WORKS_RULE = "agents act on tickets assigned to them or unassigned in their queue"
ASSIGN_RULE = (
    "an agent assigns only an unassigned ticket of their queue, to themselves; "
    "reassigning is for senior agents and supervisors"
)

NOTES_RULE = "internal notes are written and read by staff only, never by a connector"


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
        self.macros = CommandExecutor(AggregateRepository(store, MACRO, cache_size=cache_size))

    async def execute(
        self,
        ticket_id: str,
        command: domain.Command,
        *,
        command_id: str,
        actor: str = "system",
        causation_id: str = "",
        caller: Principal | None = None,
    ) -> CommandResult[domain.Ticket]:
        """Decides and appends one command against the ticket's current state. With a `caller`,
        the data rules apply first (PERMISSION_DENIED, nothing appended); None: no data rule."""
        now = self.clock()
        if caller is not None:
            command = authored(command, caller)

        def decide(state: domain.Ticket) -> list[domain.TicketEvent]:
            # Checked on the very state the decision is made on (again on a conflict's retry).
            if caller is not None and state.exists:
                self.authorize(state, command, caller)
            return domain.decide(state, command, now=now, policy=self.policy)

        result = await self.run(
            ticket_id,
            decide,
            now=now,
            command_id=command_id,
            actor=actor,
            causation_id=causation_id,
            policy_versions=self._policy_versions(command),
            expect_new=isinstance(command, domain.OpenTicket),
        )
        self._count(result)
        return result

    def authorize(self, ticket: domain.Ticket, command: domain.Command, caller: Principal) -> None:
        """Raises PermissionDenied, naming the permission and the rule, unless `caller` may run
        `command` on `ticket` (rule 1 of docs/permissions.md; skills from the agents directory)."""
        skills = self.skills_of(caller.subject)
        if isinstance(command, domain.AssignTicket):
            if not domain.may_assign(
                ticket, caller.subject, caller.roles, skills, command.agent_id
            ):
                raise _denied(ASSIGN, ticket.ticket_id, ASSIGN_RULE)
            return
        internal = isinstance(command, domain.AddReply) and command.internal
        if internal and not domain.sees_internal(caller.roles):
            raise _denied(WORKS_TICKET[domain.AddReply], ticket.ticket_id, NOTES_RULE)
        permission = WORKS_TICKET.get(type(command))
        if permission and not domain.may_act_on_ticket(
            ticket, caller.subject, caller.roles, skills
        ):
            raise _denied(permission, ticket.ticket_id, WORKS_RULE)

    def skills_of(self, agent_id: str) -> frozenset[str]:
        """Returns the skills the agents directory gives `agent_id` (none for a stranger)."""
        for agent in self.agents:
            if agent.agent_id == agent_id:
                return agent.skills
        return frozenset()

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

    async def change_macro(
        self, macro_id: str, command: domain.MacroCommand, *, command_id: str, actor: str
    ) -> CommandResult[domain.Macro]:
        """Puts or deletes a macro (a new version on the log; NOT_FOUND deleting a missing one)."""
        now = self.clock()
        return await self.run_on(
            self.macros,
            macro_id,
            lambda state: domain.decide_macro(state, command),
            now=now,
            command_id=command_id,
            actor=actor,
        )

    async def render_macro(
        self, ticket_id: str, command: domain.AddReply, values: Mapping[str, str]
    ) -> domain.AddReply:
        """Returns `command` with its body rendered from its macro (as the log has it now) and
        the macro's version recorded; unchanged without a macro. INVALID_ARGUMENT when both a
        body and a macro are given or a value is missing; NOT_FOUND for a missing macro."""
        if not command.macro_id:
            if values:
                raise domain.InvalidCommand([("macro_values", "only with macro_id")])
            return command
        if command.body:
            raise domain.InvalidCommand([("body", "must be empty when macro_id is given")])
        loaded = await self.macros.repository.load(command.macro_id, refresh=True)
        ticket, _version = await self.get(ticket_id)
        body = domain.render(
            loaded.state, values, ticket_id=ticket.ticket_id, product=ticket.product
        )
        return replace(command, body=body, macro_version=loaded.state.version)

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


def authored(command: domain.Command, caller: Principal) -> domain.Command:
    """Returns `command` with an agent reply's author set to the caller (rule 5: the author is
    the principal): an empty `author_id` becomes the caller's subject; another agent's id is
    refused with PERMISSION_DENIED (nobody replies as someone else)."""
    if not isinstance(command, domain.AddReply) or command.author is not domain.Author.AGENT:
        return command
    if not command.author_id:
        return replace(command, author_id=caller.subject)
    if command.author_id != caller.subject:
        raise PermissionDenied(
            f"permission {WORKS_TICKET[domain.AddReply]}: an agent's reply is authored by the "
            "caller; author_id must be empty or the caller's own id",
            permission=WORKS_TICKET[domain.AddReply],
        )
    return command


def _denied(permission: str, ticket_id: str, rule: str) -> PermissionDenied:
    return PermissionDenied(
        f"permission {permission} is refused on ticket {ticket_id}: {rule}",
        permission=permission,
    )


# ------------------------------------------------------------------------- edge use cases


class DirectoryEntry(Protocol):
    """A customer as the customer directory read model knows it."""

    @property
    def customer_id(self) -> str: ...

    @property
    def tier(self) -> str: ...


class CustomerDirectory(Protocol):
    """Finds a known customer by id or by a contact's keyed hash (readmodels.KnownCustomers)."""

    async def find(
        self, *, customer_id: str = "", kind: str = "", digest: str = ""
    ) -> DirectoryEntry | None:
        """Returns the directory's customer, or None."""


@dataclass(frozen=True)
class CustomerClaim:
    """Who a new ticket says its customer is: an id, or a contact, and a tier for strangers."""

    customer_id: str = ""
    email: str = ""
    phone: str = ""
    tier: domain.CustomerTier | None = None


class CustomerLookup:
    """OpenTicket's customer and tier: a known customer (by id, or by the keyed hash of the
    contact) gets its computed tier; an unknown one the request's tier."""

    def __init__(self, directory: CustomerDirectory, *, hash_key: bytes) -> None:
        self._directory = directory
        self._hash_key = hash_key

    async def resolve(self, claim: CustomerClaim) -> tuple[str, domain.CustomerTier | None]:
        """Returns the ticket's customer id and tier; INVALID_ARGUMENT for a bad or unknown
        contact given without an id."""
        customer_id = claim.customer_id.strip()
        lookup = {"customer_id": customer_id} if customer_id else self._by_contact(claim)
        if lookup is None:
            return "", claim.tier
        known = await self._directory.find(**lookup)
        if known is not None:
            return known.customer_id, domain.CustomerTier(known.tier)
        if not customer_id:
            field = f"contact_{lookup['kind']}"
            raise InvalidArgument(
                "no known customer has this contact; give customer_id",
                [FieldViolation(field, "unknown contact")],
            )
        return customer_id, claim.tier

    def _by_contact(self, claim: CustomerClaim) -> dict[str, str] | None:
        """Returns the directory lookup of the claim's first contact (None: none given)."""
        for kind, value in (("email", claim.email), ("phone", claim.phone)):
            if value.strip():
                try:
                    return {"kind": kind, "digest": contact_digest(self._hash_key, kind, value)}
                except InvalidContact as exc:
                    raise InvalidArgument(
                        f"contact_{kind} {exc}", [FieldViolation(f"contact_{kind}", str(exc))]
                    ) from None
        return None


OpenCounts = Callable[[], Awaitable[dict[str, int]]]


class Assignment:
    """Agent suggestions and auto-assignment over the current open-ticket counts."""

    def __init__(self, app: TicketingApp, open_counts: OpenCounts) -> None:
        self._app = app
        self._open_counts = open_counts

    async def suggestions(self, ticket_id: str) -> list[domain.Suggestion]:
        """Returns the configured agents ranked for the ticket by skill and current load."""
        ticket, _version = await self._app.get(ticket_id)
        return self._app.suggest(ticket, await self._open_counts())

    async def command(self, ticket_id: str, agent_id: str) -> domain.AssignTicket:
        """Returns the assignment to `agent_id`, or with none given to the best suggestion;
        FAILED_PRECONDITION when no agent can take the ticket."""
        if agent_id:
            return domain.AssignTicket(agent_id=agent_id)
        suggestions = await self.suggestions(ticket_id)
        if not suggestions:
            raise FailedPrecondition(
                f"no agent can take ticket {ticket_id}: none configured or all at capacity"
            )
        best = suggestions[0]
        return domain.AssignTicket(best.agent_id, suggested=True, reason=best.reason)


def sla_snapshots(
    app: TicketingApp, ticket: domain.Ticket, at: datetime | None = None
) -> list[domain.SlaClockSnapshot]:
    """Returns the ticket's SLA clocks as of `at` (default: now) on its channel's calendar."""
    calendar = app.policy.calendar_for(channel=ticket.channel.value)
    as_of = at or app.clock()
    return [domain.snapshot(clock, as_of, calendar) for clock in ticket.clocks.values()]
