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
from careops_platform.collectors import cached_labels, preinitialise
from careops_platform.contacts import InvalidContact, contact_digest
from careops_platform.errors import (
    Aborted,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
)
from careops_platform.identity import Principal
from careops_platform.policies import PolicyBook, PolicyHistory, PutOutcome
from careops_platform.sealing import (
    TextSealer,
    opening,
    sealed_all,
    sealing_key,
    unless_erased,
)
from careops_sla import SlaPolicy
from careops_sla.versions import SLA_KIND
from prometheus_client import Counter

from ticketing import domain
from ticketing.config import load_agents as load_agents
from ticketing.config import load_compensation_limits as load_compensation_limits

log = logging.getLogger(__name__)

STREAM = registry.TICKETING.spec()
SUBJECT_PREFIX = registry.TICKETING.prefix("ticket")
SLA_POLICY_KEY = "sla_policy"
ROUTING_RULE_KEY = "routing_rule"
ROUTING_RULE_VERSION = "skill-load-v1"

# The SLA policy as versioned data (docs/policies.md): revisions on careops.ticketing.policy.sla.
POLICY_PREFIX = registry.TICKETING.prefix("policy")
# Attempts of a command whose ticket moved to another SLA version while it was decided.
POLICY_ATTEMPTS = 3

# Ticket, agent and macro events share the stream (agents on careops.ticketing.agent.<id>,
# macros on careops.ticketing.macro.<id>).
CODEC = codec_of(
    (*get_args(domain.TicketEvent), *get_args(domain.AgentEvent), *get_args(domain.MacroEvent)),
    events_pb2,
    sealed_fields=domain.FREE_TEXT,
)

TICKET = aggregate_kind(
    STREAM, SUBJECT_PREFIX, "ticket", initial=domain.initial, evolve=domain.evolve, codec=CODEC
)
AGENT = aggregate_kind(
    STREAM,
    registry.TICKETING.prefix("agent"),
    "agent",
    initial=domain.initial_agent,
    evolve=domain.evolve_agent,
    codec=CODEC,
)
# Roles that manage the directory and set anyone's availability; others only their own.
MANAGES_AGENTS = frozenset({"supervisor", "admin"})
SET_AVAILABILITY = "agent.set_availability"

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
SLA_APPLIED = Counter(
    "careops_sla_policy_applied_total",
    "Open tickets moved to a newer SLA policy version (PutSlaPolicy with apply_to_open).",
)
SLA_EVENTS = Counter(
    "careops_sla_events_total",
    "SLA warnings and breaches by clock, kind, channel and priority.",
    ["clock", "kind", "channel", "priority"],
)
# Every series exists at 0 from the start, so an alert's increase() counts the first burst.
COMPENSATIONS = Counter(
    "careops_compensations_total",
    "Compensation events by outcome (granted, requested, approved, rejected) and kind.",
    ["outcome", "kind"],
)
COMPENSATION_OUTCOMES = {
    domain.CompensationGranted: "granted",
    domain.CompensationRequested: "requested",
    domain.CompensationApproved: "approved",
    domain.CompensationRejected: "rejected",
}
preinitialise(OPENED, domain.Channel, domain.Priority)
preinitialise(COMPENSATIONS, COMPENSATION_OUTCOMES.values(), domain.CompensationKind)
preinitialise(TRANSITIONS, (event.__name__ for event in get_args(domain.TicketEvent)))
preinitialise(SLA_EVENTS, domain.SlaClock, domain.SlaTimerKind, domain.Channel, domain.Priority)
_transitions = cached_labels(TRANSITIONS)  # every command counts its events and openings
_opened = cached_labels(OPENED)

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
    domain.GrantCompensation: "ticket.compensate",
    domain.RecordComplaintStep: "ticket.complaint_step",
    domain.TickChecklistItem: "ticket.checklist_tick",
}
ASSIGN = "ticket.assign"
GRANT_RULE = "only a role with a compensation limit grants (integration never does)"
# The roles that decide on a request above the requester's limit (the permission table agrees).
APPROVERS = frozenset({"supervisor", "admin"})
APPROVE_RULE = "supervisors decide on compensation above the requester's limit"
DECIDES_COMPENSATION: dict[type[domain.Command], str] = {
    domain.ApproveCompensation: "ticket.compensation.approve",
    domain.RejectCompensation: "ticket.compensation.reject",
}
WORKS_RULE = "agents act on tickets assigned to them or unassigned in their queue"
ASSIGN_RULE = (
    "an agent assigns only an unassigned ticket of their queue, to themselves; "
    "reassigning is for senior agents and supervisors"
)

NOTES_RULE = "internal notes are written and read by staff only, never by a connector"


class _PolicyMoved(Exception):
    """The ticket is decided under another SLA version than the command's envelope records
    (it was applied meanwhile, or its version is newer than this replica's cached history)."""

    def __init__(self, policy: SlaPolicy | None) -> None:
        super().__init__("the ticket's SLA policy version moved")
        self.policy = policy


class TicketingApp(ContextApplication[domain.Ticket]):
    """The ticketing use cases over an event store; every write goes through `execute`."""

    def __init__(
        self,
        *,
        store: EventStore,
        policy: SlaPolicy,
        agents: Sequence[domain.Agent] = (),
        limits: domain.CompensationLimits | None = None,
        clock: Callable[[], datetime] = utc_now,
        cache_size: int = 10_000,
        texts: TextSealer | None = None,
    ) -> None:
        super().__init__(
            store=store,
            stream=STREAM,
            kind=replace(TICKET, evolve=opening(domain.evolve, texts)) if texts else TICKET,
            clock=clock,
            cache_size=cache_size,
        )
        # Seals every ticket's free text for its customer before the append (main.py always
        # passes one; without, as in benchmarks, texts go to the log in clear).
        self.texts = texts
        # The policy decisions use until `seed_sla_policy` (benchmarks, unit tests); after it
        # the book's versions: a ticket under the one it was opened (or last applied) under.
        self.policy = policy
        self.sla_book: PolicyBook[SlaPolicy] = PolicyBook(
            store, STREAM, POLICY_PREFIX, SLA_KIND, clock=clock
        )
        self._sla_history: PolicyHistory | None = None
        self.seed = list(agents)  # the directory's first agents (seed_agents), not consulted later
        self.agent_repository = AggregateRepository(store, AGENT)
        self.limits = limits if limits is not None else load_compensation_limits(None)
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
        skills: frozenset[str] = frozenset()
        if caller is not None:
            command = authored(command, caller)
            if _narrowed_by_skills(command, caller):
                skills = await self.skills_of(caller.subject)

        owner = await self._customer_of(ticket_id, command)
        key = await sealing_key(self.texts, self.repository, ticket_id, owner, now)
        fresh = False
        recorded = await self._policy_for(ticket_id, command)

        def decide(state: domain.Ticket) -> list[domain.TicketEvent]:
            # Checked on the very state the decision is made on (again on a conflict's retry).
            if caller is not None and state.exists:
                self.authorize(state, command, caller, skills)
            under = self._decided_under(state, command, recorded, fresh=fresh)
            if under is None:
                return []
            # An unknown ticket stays NOT_FOUND (decide says so), whoever asks.
            limited = self.within_limits(state, command, caller) if state.exists else command
            events = domain.decide(state, limited, now=now, policy=under)
            return sealed_all(self.texts, events, owner, key)

        for attempt in range(POLICY_ATTEMPTS):
            try:
                result = await self.run(
                    ticket_id,
                    decide,
                    now=now,
                    command_id=command_id,
                    actor=actor,
                    causation_id=causation_id,
                    policy_versions=self._policy_versions(command, recorded),
                    expect_new=isinstance(command, domain.OpenTicket),
                )
                break
            except _PolicyMoved as moved:
                if attempt + 1 == POLICY_ATTEMPTS:
                    raise Aborted(
                        f"ticket {ticket_id} kept moving between SLA policy versions; retry"
                    ) from None
                fresh = moved.policy is None
                recorded = moved.policy or await self._policy_for(ticket_id, command, fresh=True)
        self._count(result)
        return result

    # ----------------------------------------------------------------------- SLA policy

    async def seed_sla_policy(self, document: str) -> None:
        """Puts `document` (the file setting or built-in default) as revision 1 of the SLA
        policy when the log has none; from then on decisions read the book's versions."""
        await self.sla_book.seed(document)
        self._sla_history = await self.sla_book.history(fresh=True)

    async def put_sla_policy(
        self,
        document: str,
        *,
        author: str,
        command_id: str,
        reason: str = "",
        apply_to_open: bool = False,
        expected_revision: int = 0,
    ) -> PutOutcome[SlaPolicy]:
        """Puts a new revision (INVALID_ARGUMENT locating a bad document, nothing appended);
        it applies at once to tickets opened after it, here, and within REFRESH_SECONDS on
        other replicas. With `apply_to_open`, the SlaPolicyApplier reaction moves the open
        tickets to it."""
        outcome = await self.sla_book.put(
            document,
            author=author,
            command_id=command_id,
            reason=reason,
            apply_to_open=apply_to_open,
            expected_revision=expected_revision,
        )
        self._sla_history = await self.sla_book.history()
        return outcome

    async def apply_sla_policy(
        self, ticket_id: str, revision: int, *, command_id: str, actor: str = "sla-policy"
    ) -> CommandResult[domain.Ticket]:
        """Moves one open ticket to revision `revision` (nothing when it is no longer active or
        already under that revision or a later one); `command_id` is derived from the policy
        event and the ticket, so a redelivery cannot apply it twice."""
        _version, policy = await self.sla_book.revision(revision)
        result = await self.execute(
            ticket_id, domain.ApplySlaPolicy(revision, policy), command_id=command_id, actor=actor
        )
        if result.events:
            SLA_APPLIED.inc()
        return result

    def policy_of(self, ticket: domain.Ticket | None = None) -> SlaPolicy:
        """The policy `ticket` is decided under as this replica knows the versions (no I/O);
        None: the version in force, for a ticket opened now."""
        if self._sla_history is None or self._sla_history.current is None:
            return self.policy
        label = ticket.sla_policy_version if ticket is not None else ""
        return self._labelled(label) or self.sla_book.parsed(self._sla_history.current)

    def _labelled(self, label: str) -> SlaPolicy | None:
        """The cached version `label` ("" : the one in force); None when not (yet) known."""
        history = self._sla_history
        assert history is not None and history.current is not None
        found = history.labelled(label) if label else history.current
        return self.sla_book.parsed(found) if found is not None else None

    def _revision_of(self, label: str) -> int:
        """The revision of the cached version `label` (0: unknown or "")."""
        found = self._sla_history.labelled(label) if self._sla_history and label else None
        return found.revision if found is not None else 0

    async def _policy_for(
        self, ticket_id: str, command: domain.Command, *, fresh: bool = False
    ) -> SlaPolicy:
        """The policy the command's envelope records: the version in force for an opening, the
        applied one for ApplySlaPolicy, else the ticket's own (read from the log on a miss).
        A cached read: the book re-reads its log at most every second."""
        if self._sla_history is None:
            return self.policy
        self._sla_history = await self.sla_book.history(fresh=fresh)
        if isinstance(command, domain.ApplySlaPolicy):
            return command.policy  # type: ignore[return-value]
        if isinstance(command, domain.OpenTicket):
            return self.policy_of(None)
        state = (await self.repository.load(ticket_id, refresh=fresh)).state
        under = self._labelled(state.sla_policy_version)
        if under is None and not fresh:
            return await self._policy_for(ticket_id, command, fresh=True)
        return under or self.policy_of(None)

    def _decided_under(
        self,
        state: domain.Ticket,
        command: domain.Command,
        recorded: SlaPolicy,
        *,
        fresh: bool,
    ) -> SlaPolicy | None:
        """The policy `state` is decided under (checked on the very state decided on); raises
        _PolicyMoved when it is not the one the envelope records. None: nothing to do (an
        ApplySlaPolicy of a revision not newer than the ticket's)."""
        if self._sla_history is None or isinstance(command, domain.OpenTicket):
            return recorded
        under = self._labelled(state.sla_policy_version)
        if under is None:
            if not fresh:
                raise _PolicyMoved(None)
            under = self.policy_of(None)  # a label the log does not hold (an older file)
        if isinstance(command, domain.ApplySlaPolicy):
            newer = command.revision > self._revision_of(state.sla_policy_version)
            return under if newer else None
        if under.version != recorded.version:
            raise _PolicyMoved(under)
        return under

    async def _customer_of(self, ticket_id: str, command: domain.Command) -> str:
        """The ticket's customer, whose key seals the command's texts ("" without a sealer)."""
        if self.texts is None:
            return ""
        if isinstance(command, domain.OpenTicket):
            return command.customer_id.strip()
        return (await self.repository.load(ticket_id)).state.customer_id

    def authorize(
        self,
        ticket: domain.Ticket,
        command: domain.Command,
        caller: Principal,
        skills: frozenset[str],
    ) -> None:
        """Raises PermissionDenied, naming the permission and the rule, unless `caller` (whose
        directory skills are `skills`) may run `command` on `ticket` (rule 1 of
        docs/permissions.md)."""
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

    def within_limits(
        self, ticket: domain.Ticket, command: domain.Command, caller: Principal | None
    ) -> domain.Command:
        """Returns a compensation command with the caller as its author and the caller's own
        limit per ticket in its currency (the roles come from the verified principal, never the
        request); without a caller the limit is 0, so a grant only asks for approval."""
        roles = caller.roles if caller is not None else frozenset()
        by = caller.subject if caller is not None else ""
        if isinstance(command, domain.GrantCompensation):
            if caller is not None and not self.limits.grants(roles):
                raise _denied(WORKS_TICKET[type(command)], ticket.ticket_id, GRANT_RULE)
            limit = self.limits.limit_for(roles, command.currency)
            return replace(command, by=by, limit=limit)
        deciding = isinstance(command, domain.ApproveCompensation | domain.RejectCompensation)
        if deciding and caller is not None and not APPROVERS & roles:
            permission = DECIDES_COMPENSATION[type(command)]
            raise _denied(permission, ticket.ticket_id, APPROVE_RULE)
        if isinstance(command, domain.ApproveCompensation):
            currency = next(
                (
                    item.currency
                    for item in ticket.compensations
                    if item.compensation_id == command.compensation_id
                ),
                "",
            )
            return replace(command, by=by, limit=self.limits.limit_for(roles, currency))
        if isinstance(command, domain.RejectCompensation):
            return replace(command, by=by)
        return command

    async def skills_of(self, agent_id: str) -> frozenset[str]:
        """Returns the skills the agent directory gives `agent_id` as of the log (none for a
        stranger)."""
        if not agent_id:
            return frozenset()
        loaded = await self.agent_repository.load(agent_id, refresh=True)
        return loaded.state.skills if loaded.state.exists else frozenset()

    # ----------------------------------------------------------------------- agent directory

    async def agent(self, agent_id: str) -> tuple[domain.AgentProfile, int]:
        """Returns the agent as of the log and its version; AgentNotFound if not in the
        directory."""
        loaded = await self.agent_repository.load(agent_id, refresh=True)
        if not loaded.state.exists:
            raise domain.AgentNotFound(f"agent {agent_id} is not in the directory")
        return loaded.state, loaded.version

    async def put_agent(
        self, agent_id: str, command: domain.PutAgent, *, command_id: str, actor: str
    ) -> CommandResult[domain.AgentProfile]:
        """Defines or replaces an agent (no event when unchanged)."""
        return await self._on_agent(agent_id, command, command_id=command_id, actor=actor)

    async def set_availability(
        self,
        agent_id: str,
        command: domain.SetAvailability,
        *,
        command_id: str,
        actor: str,
        caller: Principal | None = None,
    ) -> CommandResult[domain.AgentProfile]:
        """Sets an agent online, away or offline; with a `caller`, only their own unless they
        manage agents (PERMISSION_DENIED)."""
        if caller is not None and agent_id != caller.subject and not MANAGES_AGENTS & caller.roles:
            raise PermissionDenied(
                f"permission {SET_AVAILABILITY}: an agent sets only their own availability; "
                "others' is for supervisors",
                permission=SET_AVAILABILITY,
            )
        return await self._on_agent(agent_id, command, command_id=command_id, actor=actor)

    async def _on_agent(
        self, agent_id: str, command: domain.AgentCommand, *, command_id: str, actor: str
    ) -> CommandResult[domain.AgentProfile]:
        return await self.run_on(
            CommandExecutor(self.agent_repository),
            agent_id,
            lambda state: domain.decide_agent(state, command),
            now=self.clock(),
            command_id=command_id,
            actor=actor,
        )

    async def seed_agents(self, *, directory_empty: bool) -> int:
        """Puts the seed agents (online) once: only while the directory is empty and none of
        them is on the log. Returns how many were put."""
        if not directory_empty:
            return 0
        for agent in self.seed:
            if (await self.agent_repository.load(agent.agent_id, refresh=True)).state.exists:
                return 0
        for agent in self.seed:
            command = domain.put_from_skills(agent.skills, agent.capacity)
            await self.put_agent(
                agent.agent_id, command, command_id=f"agent-seed-{agent.agent_id}", actor="config"
            )
        return len(self.seed)

    def _policy_versions(self, command: domain.Command, policy: SlaPolicy) -> dict[str, str]:
        versions = {SLA_POLICY_KEY: policy.version}
        if isinstance(command, domain.AssignTicket) and command.suggested:
            versions[ROUTING_RULE_KEY] = ROUTING_RULE_VERSION
        return versions

    def _count(self, result: CommandResult[domain.Ticket]) -> None:
        ticket = result.state
        for event in result.events:
            _transitions(type(event).__name__).inc()
            outcome = COMPENSATION_OUTCOMES.get(type(event))
            if outcome is not None:
                COMPENSATIONS.labels(outcome, event.kind.value).inc()  # type: ignore[union-attr]
            if isinstance(event, domain.TicketOpened):
                _opened(event.channel.value, event.priority.value).inc()
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
        if self._sla_history is not None:
            self._sla_history = await self.sla_book.history()  # cached: policy_of reads it
        loaded = await unless_erased(
            self.texts, self.repository, ticket_id, loaded, loaded.state.customer_id
        )
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

    async def fire_timer(self, timer: DueTimer) -> None:
        """Fires one deadline (SLA or complaint follow-up); the timer id is the command id, so
        it is appended once."""
        if timer.kind == domain.FOLLOW_UP_TIMER:
            follow_up = domain.FireFollowUpTimer(datetime.fromisoformat(timer.data["due_at"]))
            await self.execute(
                timer.aggregate_id, follow_up, command_id=timer.timer_id, actor="complaint-timer"
            )
            return
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


def _narrowed_by_skills(command: domain.Command, caller: Principal) -> bool:
    """Whether rule 1 reads the caller's skills for `command`: only an agent's queue does (the
    directory is read from the log only then, not on every command)."""
    narrowed = isinstance(command, domain.AssignTicket) or type(command) in WORKS_TICKET
    return narrowed and domain.AGENT in caller.roles


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


@dataclass(frozen=True)
class Workload:
    """The directory's agents (as routing reads them) and their active tickets."""

    agents: Sequence[domain.Agent]
    open_tickets: Mapping[str, int]
    channel_load: Mapping[str, Mapping[str, int]]

    def suggest(self, ticket: domain.Ticket) -> list[domain.Suggestion]:
        """Ranks the agents for `ticket` by skill, spare capacity and load."""
        return domain.suggest_agents(ticket, self.agents, self.open_tickets, self.channel_load)


Workloads = Callable[[], Awaitable[Workload]]


class AgentRecord(Protocol):
    """An agent as the directory read model lists it (readmodels.AgentRow)."""

    @property
    def agent_id(self) -> str: ...

    @property
    def channels(self) -> tuple[tuple[str, int], ...]: ...

    @property
    def ticket_types(self) -> tuple[str, ...]: ...

    @property
    def senior(self) -> bool: ...

    @property
    def availability(self) -> str: ...


class DirectoryReads(Protocol):
    """The directory read model (readmodels.Directory)."""

    async def agents(self, *, team: str = "", availability: str = "") -> Sequence[AgentRecord]:
        """Returns the directory's agents."""

    async def loads(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """Returns each assignee's active tickets: in total and per channel."""


def profile_of(record: AgentRecord) -> domain.AgentProfile:
    """Returns the domain agent of a directory row."""
    return domain.AgentProfile(
        agent_id=record.agent_id,
        exists=True,
        channels=tuple(
            domain.ChannelCapacity(domain.Channel(channel), capacity)
            for channel, capacity in record.channels
        ),
        ticket_types=tuple(record.ticket_types),
        senior=record.senior,
        availability=domain.Availability(record.availability),
    )


def workloads_of(directory: DirectoryReads) -> Workloads:
    """Returns the Workloads reading `directory` (agents and loads as of the read models)."""

    async def workload() -> Workload:
        agents = [profile_of(row).routed() for row in await directory.agents()]
        if not any(agent.online for agent in agents):
            # Loads only rank online agents: with nobody online they are not read (an
            # aggregate over every active ticket, on every router pass).
            return Workload(agents, {}, {})
        totals, per_channel = await directory.loads()
        return Workload(agents, totals, per_channel)

    return workload


class Assignment:
    """Agent suggestions and auto-assignment over the directory and current loads."""

    def __init__(self, app: TicketingApp, workloads: Workloads) -> None:
        self._app = app
        self._workloads = workloads

    async def suggestions(self, ticket_id: str) -> list[domain.Suggestion]:
        """Returns the directory's online agents ranked for the ticket by skill and load."""
        ticket, _version = await self._app.get(ticket_id)
        return (await self._workloads()).suggest(ticket)

    async def command(self, ticket_id: str, agent_id: str) -> domain.AssignTicket:
        """Returns the assignment to `agent_id`, or with none given to the best suggestion;
        FAILED_PRECONDITION when no agent can take the ticket or `agent_id` is not in the
        directory (the ticket exists: it is the request's agent that does not)."""
        if agent_id:
            try:
                await self._app.agent(agent_id)
            except domain.AgentNotFound as exc:
                raise FailedPrecondition(f"cannot assign ticket {ticket_id}: {exc}") from None
            return domain.AssignTicket(agent_id=agent_id)
        suggestions = await self.suggestions(ticket_id)
        if not suggestions:
            raise FailedPrecondition(
                f"no agent can take ticket {ticket_id}: none in the directory is online with "
                "spare capacity"
            )
        best = suggestions[0]
        return domain.AssignTicket(best.agent_id, suggested=True, reason=best.reason)


def sla_snapshots(
    app: TicketingApp, ticket: domain.Ticket, at: datetime | None = None
) -> list[domain.SlaClockSnapshot]:
    """Returns the ticket's SLA clocks as of `at` (default: now) on its channel's calendar."""
    calendar = app.policy_of(ticket).calendar_for(channel=ticket.channel.value)
    as_of = at or app.clock()
    return [domain.snapshot(clock, as_of, calendar) for clock in ticket.clocks.values()]
