"""Ticket aggregate: lifecycle, SLA clocks and routing. Pure: no I/O, no clock, no protobuf.

decide(state, command, now=..., policy=...) -> events;  evolve(state, event, at) -> state.
SLA clocks count business time of the policy's calendar with the shared model of
`careops_sla.clock` (the one quality's what-if replays); the events carry a snapshot of every
clock they change, so evolve needs no calendar and the read side can schedule the deadlines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from careops_sla.clock import Calendar, Clock, Targets, TicketClocks

MAX_SUBJECT = 200
MAX_TEXT = 20_000
MAX_ID = 100


# ----------------------------------------------------------------------------- vocabulary


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    CHAT = "chat"
    SOCIAL = "social"
    APP = "app"
    WEB = "web"
    STORE = "store"


class TicketType(StrEnum):
    CONSULTATION = "consultation"
    FAULT = "fault"
    COMPLAINT = "complaint"
    RETURN = "return"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Status(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CustomerTier(StrEnum):
    HIGH_VALUE = "high_value"
    POTENTIAL = "potential"
    REGULAR = "regular"
    LOW_FREQUENCY = "low_frequency"


class HoldReason(StrEnum):
    WAITING_CUSTOMER = "waiting_customer"
    WAITING_THIRD_PARTY = "waiting_third_party"
    WAITING_INTERNAL = "waiting_internal"


class Author(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"


class SlaClock(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class SlaTimerKind(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


# Only waiting for the customer stops the clocks: the other waits are the company's own time.
PAUSING_HOLD_REASONS = frozenset({HoldReason.WAITING_CUSTOMER})
ACTIVE = frozenset({Status.OPEN, Status.ASSIGNED, Status.IN_PROGRESS, Status.ON_HOLD})


# ----------------------------------------------------------------------------- errors


class TicketError(Exception):
    """Base of the ticket domain's errors."""


class InvalidCommand(TicketError):
    """The command's fields are invalid; `violations` lists (field, description)."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in violations))
        self.violations = tuple(violations)


class IllegalTransition(TicketError):
    """The command is not allowed in the ticket's current status."""


class TicketNotFound(TicketError):
    """No ticket with that id exists."""


class TicketAlreadyExists(TicketError):
    """A ticket with that id already exists."""


# ----------------------------------------------------------------------------- SLA ports


class Policy(Protocol):
    """What decide needs of an SLA policy (implemented by careops_sla.SlaPolicy)."""

    @property
    def version(self) -> str: ...

    @property
    def warn_ratio(self) -> float: ...

    def targets_for(self, *, channel: str, priority: str, tier: str) -> Targets: ...

    def calendar_for(self, *, channel: str) -> Calendar: ...


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class SlaClockSnapshot:
    clock: SlaClock
    target: timedelta
    consumed: timedelta = timedelta(0)
    running: bool = False
    paused: bool = False
    warn_at: datetime | None = None
    due_at: datetime | None = None
    warned: bool = False
    breached: bool = False
    met: bool = False
    stopped_at: datetime | None = None


@dataclass(frozen=True)
class SlaSnapshot:
    clocks: tuple[SlaClockSnapshot, ...] = ()


@dataclass(frozen=True)
class TicketOpened:
    ticket_id: str
    customer_id: str
    channel: Channel
    type: TicketType
    priority: Priority
    subject: str
    description: str
    tier: CustomerTier
    sla: SlaSnapshot | None = None
    product: str = ""


@dataclass(frozen=True)
class TicketAssigned:
    agent_id: str
    suggested: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ReplyAdded:
    author: Author
    author_id: str
    body: str
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class PriorityChanged:
    from_priority: Priority
    to_priority: Priority
    reason: str = ""
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketEscalated:
    level: int
    to_team: str
    reason: str


@dataclass(frozen=True)
class TicketHeld:
    reason: HoldReason
    note: str = ""
    clocks_paused: bool = False
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketResumed:
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketResolved:
    resolution: str
    first_contact: bool
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketReopened:
    reason: str
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class TicketClosed:
    note: str = ""
    sla: SlaSnapshot | None = None


@dataclass(frozen=True)
class SlaWarningRaised:
    clock: SlaClock
    due_at: datetime
    target: timedelta


@dataclass(frozen=True)
class SlaBreached:
    clock: SlaClock
    due_at: datetime
    target: timedelta


TicketEvent = (
    TicketOpened
    | TicketAssigned
    | ReplyAdded
    | PriorityChanged
    | TicketEscalated
    | TicketHeld
    | TicketResumed
    | TicketResolved
    | TicketReopened
    | TicketClosed
    | SlaWarningRaised
    | SlaBreached
)

# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class OpenTicket:
    ticket_id: str
    customer_id: str
    channel: Channel | None
    type: TicketType | None
    priority: Priority | None
    subject: str
    description: str = ""
    tier: CustomerTier | None = None
    product: str = ""


@dataclass(frozen=True)
class AssignTicket:
    agent_id: str
    suggested: bool = False
    reason: str = ""


@dataclass(frozen=True)
class AddReply:
    author: Author | None
    author_id: str
    body: str


@dataclass(frozen=True)
class ChangePriority:
    priority: Priority | None
    reason: str = ""


@dataclass(frozen=True)
class EscalateTicket:
    reason: str
    to_team: str = ""


@dataclass(frozen=True)
class HoldTicket:
    reason: HoldReason | None
    note: str = ""


@dataclass(frozen=True)
class ResumeTicket:
    pass


@dataclass(frozen=True)
class ResolveTicket:
    resolution: str = ""


@dataclass(frozen=True)
class ReopenTicket:
    reason: str = ""


@dataclass(frozen=True)
class CloseTicket:
    note: str = ""


@dataclass(frozen=True)
class FireSlaTimer:
    """Sent by the timer scheduler when a deadline recorded in the read side is due."""

    clock: SlaClock
    kind: SlaTimerKind


Command = (
    OpenTicket
    | AssignTicket
    | AddReply
    | ChangePriority
    | EscalateTicket
    | HoldTicket
    | ResumeTicket
    | ResolveTicket
    | ReopenTicket
    | CloseTicket
    | FireSlaTimer
)

# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Ticket:
    ticket_id: str
    exists: bool = False
    customer_id: str = ""
    channel: Channel = Channel.WEB
    type: TicketType = TicketType.CONSULTATION
    priority: Priority = Priority.NORMAL
    status: Status = Status.OPEN
    subject: str = ""
    description: str = ""
    tier: CustomerTier = CustomerTier.REGULAR
    product: str = ""
    assignee_id: str = ""
    escalation_level: int = 0
    hold_reason: HoldReason | None = None
    reopen_count: int = 0
    agent_replies: int = 0
    customer_replies: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    clocks: dict[SlaClock, Clock] = field(default_factory=dict)


def initial(ticket_id: str) -> Ticket:
    """Returns the state of a ticket that does not exist yet."""
    return Ticket(ticket_id=ticket_id)


# ----------------------------------------------------------------------------- clock maths


def snapshot(clock: Clock, at: datetime, calendar: Calendar) -> SlaClockSnapshot:
    """Returns the clock as of `at` (consumed time includes the running segment)."""
    return SlaClockSnapshot(
        clock=SlaClock(clock.name),
        target=clock.target,
        consumed=clock.consumed_at(at, calendar),
        running=clock.running,
        paused=clock.paused,
        warn_at=clock.warn_at if clock.running and not clock.warned else None,
        due_at=clock.due_at if clock.running else None,
        warned=clock.warned,
        breached=clock.breached,
        met=clock.met,
        stopped_at=clock.stopped_at,
    )


def _pair(clocks: dict[SlaClock, Clock]) -> TicketClocks:
    return TicketClocks(clocks[SlaClock.FIRST_RESPONSE], clocks[SlaClock.RESOLUTION])


def _late_breaches(
    before: TicketClocks, after: TicketClocks, calendar: Calendar
) -> list[TicketEvent]:
    """SlaBreached for each clock found over its target (by a command stopping it, or running
    past it) before its breach timer fired, so every breach is an event however it was found."""
    events: list[TicketEvent] = []
    for old, new in zip(before.clocks(), after.clocks(), strict=True):
        if new.breached and not old.breached:
            due_at = new.reached_at(new.target, calendar) or new.stopped_at
            assert due_at is not None
            events.append(SlaBreached(SlaClock(new.name), due_at, new.target))
    return events


# ----------------------------------------------------------------------------- decide


class _Context:
    """Everything decide may consult besides state and command."""

    def __init__(self, now: datetime, policy: Policy, channel: Channel) -> None:
        self.now = now
        self.policy = policy
        self.calendar = policy.calendar_for(channel=channel.value)

    @property
    def warn_ratio(self) -> float:
        return self.policy.warn_ratio

    def snapshot(self, clocks: TicketClocks) -> SlaSnapshot:
        return SlaSnapshot(
            tuple(snapshot(clock, self.now, self.calendar) for clock in clocks.clocks())
        )


def decide(state: Ticket, command: Command, *, now: datetime, policy: Policy) -> list[TicketEvent]:
    """Returns the events a command produces; raises a TicketError when it is not allowed."""
    if isinstance(command, OpenTicket):
        return _open(state, command, now, policy)
    if not state.exists:
        raise TicketNotFound(f"ticket {state.ticket_id} does not exist")
    ctx = _Context(now, policy, state.channel)
    # A clock past its target is breached before the command acts, even if its timer is late.
    clocks = _pair(state.clocks)
    overdue = _late_breaches(clocks, clocks.breach_due(now, ctx.calendar), ctx.calendar)
    for event in overdue:
        state = evolve(state, event, now)
    handler = _HANDLERS[type(command)]
    return [*overdue, *handler(state, command, ctx)]  # type: ignore[operator]


def _require(violations: list[tuple[str, str]]) -> None:
    if violations:
        raise InvalidCommand(violations)


def _text(name: str, value: str, *, required: bool, limit: int) -> list[tuple[str, str]]:
    if required and not value.strip():
        return [(name, "must not be empty")]
    if len(value) > limit:
        return [(name, f"must be at most {limit} characters")]
    return []


def _open(state: Ticket, command: OpenTicket, now: datetime, policy: Policy) -> list[TicketEvent]:
    violations = _text("customer_id", command.customer_id, required=True, limit=MAX_ID)
    violations += _text("subject", command.subject, required=True, limit=MAX_SUBJECT)
    violations += _text("description", command.description, required=False, limit=MAX_TEXT)
    violations += _text("product", command.product, required=False, limit=MAX_ID)
    for name in ("channel", "type", "priority"):
        if getattr(command, name) is None:
            violations.append((name, f"must be specified (not {name.upper()}_UNSPECIFIED)"))
    _require(violations)
    if state.exists:
        raise TicketAlreadyExists(f"ticket {state.ticket_id} already exists")
    assert command.channel and command.priority and command.type
    tier = command.tier or CustomerTier.REGULAR
    ctx = _Context(now, policy, command.channel)
    targets = policy.targets_for(
        channel=command.channel.value, priority=command.priority.value, tier=tier.value
    )
    clocks = TicketClocks.opened(targets, now, ctx.calendar, policy.warn_ratio)
    return [
        TicketOpened(
            ticket_id=state.ticket_id,
            customer_id=command.customer_id.strip(),
            channel=command.channel,
            type=command.type,
            priority=command.priority,
            subject=command.subject.strip(),
            description=command.description,
            tier=tier,
            sla=ctx.snapshot(clocks),
            product=command.product.strip(),
        )
    ]


def _not_in(state: Ticket, allowed: frozenset[Status], action: str) -> None:
    if state.status not in allowed:
        raise IllegalTransition(
            f"cannot {action} ticket {state.ticket_id}: "
            f"it is {state.status.value.replace('_', ' ')}"
        )


def _assign(state: Ticket, command: AssignTicket, ctx: _Context) -> list[TicketEvent]:
    _require(_text("agent_id", command.agent_id, required=True, limit=MAX_ID))
    _not_in(state, ACTIVE, "assign")
    if command.agent_id == state.assignee_id:
        return []
    return [TicketAssigned(command.agent_id, command.suggested, command.reason)]


def _reply(state: Ticket, command: AddReply, ctx: _Context) -> list[TicketEvent]:
    violations = _text("body", command.body, required=True, limit=MAX_TEXT)
    violations += _text("author_id", command.author_id, required=False, limit=MAX_ID)
    if command.author is None:
        violations.append(("author", "must be specified (AUTHOR_AGENT or AUTHOR_CUSTOMER)"))
    _require(violations)
    _not_in(state, ACTIVE | {Status.RESOLVED}, "reply to")
    assert command.author is not None
    clocks = _pair(state.clocks)
    if command.author is Author.AGENT and clocks.answers():
        answered = clocks.agent_reply(ctx.now, ctx.calendar)
        reply = ReplyAdded(command.author, command.author_id, command.body, ctx.snapshot(answered))
        return [*_late_breaches(clocks, answered, ctx.calendar), reply]
    events: list[TicketEvent] = [ReplyAdded(command.author, command.author_id, command.body)]
    waiting_for_customer = state.hold_reason is HoldReason.WAITING_CUSTOMER
    if (
        command.author is Author.CUSTOMER
        and state.status is Status.ON_HOLD
        and waiting_for_customer
    ):
        events += _resume(state, ResumeTicket(), ctx)
    return events


def _change_priority(state: Ticket, command: ChangePriority, ctx: _Context) -> list[TicketEvent]:
    violations = _text("reason", command.reason, required=False, limit=MAX_SUBJECT)
    if command.priority is None:
        violations.append(("priority", "must be specified (not PRIORITY_UNSPECIFIED)"))
    _require(violations)
    _not_in(state, ACTIVE, "change the priority of")
    assert command.priority is not None
    if command.priority is state.priority:
        return []
    targets = ctx.policy.targets_for(
        channel=state.channel.value, priority=command.priority.value, tier=state.tier.value
    )
    clocks = _pair(state.clocks).retarget(targets, ctx.now, ctx.calendar, ctx.warn_ratio)
    return [PriorityChanged(state.priority, command.priority, command.reason, ctx.snapshot(clocks))]


def _escalate(state: Ticket, command: EscalateTicket, ctx: _Context) -> list[TicketEvent]:
    violations = _text("reason", command.reason, required=True, limit=MAX_SUBJECT)
    violations += _text("to_team", command.to_team, required=False, limit=MAX_ID)
    _require(violations)
    _not_in(state, ACTIVE, "escalate")
    return [TicketEscalated(state.escalation_level + 1, command.to_team, command.reason)]


def _hold(state: Ticket, command: HoldTicket, ctx: _Context) -> list[TicketEvent]:
    violations = _text("note", command.note, required=False, limit=MAX_SUBJECT)
    if command.reason is None:
        violations.append(("reason", "must be specified (not HOLD_REASON_UNSPECIFIED)"))
    _require(violations)
    _not_in(state, ACTIVE - {Status.ON_HOLD}, "put on hold")
    assert command.reason is not None
    if command.reason not in PAUSING_HOLD_REASONS:
        return [TicketHeld(command.reason, command.note, clocks_paused=False)]
    clocks = _pair(state.clocks).pause(ctx.now, ctx.calendar)
    return [TicketHeld(command.reason, command.note, True, ctx.snapshot(clocks))]


def _resume(state: Ticket, command: ResumeTicket, ctx: _Context) -> list[TicketEvent]:
    _not_in(state, frozenset({Status.ON_HOLD}), "resume")
    if not any(clock.paused for clock in state.clocks.values()):
        return [TicketResumed()]
    clocks = _pair(state.clocks).resume(ctx.now, ctx.calendar, ctx.warn_ratio)
    return [TicketResumed(ctx.snapshot(clocks))]


def _resolve(state: Ticket, command: ResolveTicket, ctx: _Context) -> list[TicketEvent]:
    _require(_text("resolution", command.resolution, required=False, limit=MAX_TEXT))
    _not_in(state, ACTIVE, "resolve")
    before = _pair(state.clocks)
    clocks = before.resolve(ctx.now, ctx.calendar)
    first_contact = state.agent_replies <= 1 and state.reopen_count == 0
    resolved = TicketResolved(command.resolution, first_contact, ctx.snapshot(clocks))
    return [*_late_breaches(before, clocks, ctx.calendar), resolved]


def _reopen(state: Ticket, command: ReopenTicket, ctx: _Context) -> list[TicketEvent]:
    _require(_text("reason", command.reason, required=False, limit=MAX_SUBJECT))
    _not_in(state, frozenset({Status.RESOLVED}), "reopen")
    clocks = _pair(state.clocks).reopen(ctx.now, ctx.calendar, ctx.warn_ratio)
    return [TicketReopened(command.reason, ctx.snapshot(clocks))]


def _close(state: Ticket, command: CloseTicket, ctx: _Context) -> list[TicketEvent]:
    _require(_text("note", command.note, required=False, limit=MAX_SUBJECT))
    _not_in(state, frozenset({Status.RESOLVED}), "close")
    return [TicketClosed(command.note)]


def _fire(state: Ticket, command: FireSlaTimer, ctx: _Context) -> list[TicketEvent]:
    clock = state.clocks.get(command.clock)
    if clock is None or not clock.running:
        return []
    if command.kind is SlaTimerKind.WARNING:
        if clock.warned or clock.warn_at is None or clock.warn_at > ctx.now:
            return []
        assert clock.due_at is not None
        return [SlaWarningRaised(command.clock, clock.due_at, clock.target)]
    if clock.breached or clock.due_at is None or clock.due_at > ctx.now:
        return []
    return [SlaBreached(command.clock, clock.due_at, clock.target)]


_HANDLERS = {
    AssignTicket: _assign,
    AddReply: _reply,
    ChangePriority: _change_priority,
    EscalateTicket: _escalate,
    HoldTicket: _hold,
    ResumeTicket: _resume,
    ResolveTicket: _resolve,
    ReopenTicket: _reopen,
    CloseTicket: _close,
    FireSlaTimer: _fire,
}


# ----------------------------------------------------------------------------- evolve


def _clocks_from(
    snapshot_: SlaSnapshot | None, state: Ticket, at: datetime
) -> dict[SlaClock, Clock]:
    if snapshot_ is None:
        return state.clocks
    clocks = dict(state.clocks)
    for item in snapshot_.clocks:
        # The running segment up to this event joins the history (due times after a retarget).
        previous = clocks.get(item.clock)
        history = previous.checkpoint(at).history if previous else ()
        clocks[item.clock] = Clock(
            name=item.clock,
            target=item.target,
            consumed=item.consumed,
            running_since=at if item.running else None,
            paused=item.paused,
            warn_at=item.warn_at,
            due_at=item.due_at,
            warned=item.warned,
            breached=item.breached,
            met=item.met,
            stopped_at=item.stopped_at,
            history=history,
        )
    return clocks


def _resting_status(state: Ticket) -> Status:
    return Status.IN_PROGRESS if state.assignee_id else Status.OPEN


def evolve(state: Ticket, event: TicketEvent, at: datetime) -> Ticket:
    """Returns the state after one event recorded at `at`."""
    state = replace(state, updated_at=at)
    match event:
        case TicketOpened():
            return replace(
                state,
                exists=True,
                customer_id=event.customer_id,
                channel=event.channel,
                type=event.type,
                priority=event.priority,
                status=Status.OPEN,
                subject=event.subject,
                description=event.description,
                tier=event.tier,
                product=event.product,
                created_at=at,
                clocks=_clocks_from(event.sla, state, at),
            )
        case TicketAssigned():
            status = Status.ASSIGNED if state.status is Status.OPEN else state.status
            return replace(state, assignee_id=event.agent_id, status=status)
        case ReplyAdded():
            return _evolve_reply(state, event, at)
        case PriorityChanged():
            return replace(
                state, priority=event.to_priority, clocks=_clocks_from(event.sla, state, at)
            )
        case TicketEscalated():
            return replace(state, escalation_level=event.level)
        case TicketHeld():
            clocks = _clocks_from(event.sla, state, at)
            return replace(state, status=Status.ON_HOLD, hold_reason=event.reason, clocks=clocks)
        case TicketResumed():
            clocks = _clocks_from(event.sla, state, at)
            return replace(state, status=_resting_status(state), hold_reason=None, clocks=clocks)
        case TicketResolved():
            clocks = _clocks_from(event.sla, state, at)
            return replace(
                state, status=Status.RESOLVED, hold_reason=None, resolved_at=at, clocks=clocks
            )
        case TicketReopened():
            return replace(
                state,
                status=_resting_status(state),
                reopen_count=state.reopen_count + 1,
                resolved_at=None,
                clocks=_clocks_from(event.sla, state, at),
            )
        case TicketClosed():
            return replace(state, status=Status.CLOSED, closed_at=at)
        case SlaWarningRaised():
            return _flag(state, event.clock, warned=True)
        case SlaBreached():
            return _flag(state, event.clock, breached=True)
    return state


def _evolve_reply(state: Ticket, event: ReplyAdded, at: datetime) -> Ticket:
    clocks = _clocks_from(event.sla, state, at)
    if event.author is Author.CUSTOMER:
        return replace(state, customer_replies=state.customer_replies + 1, clocks=clocks)
    status = state.status
    if status in (Status.OPEN, Status.ASSIGNED):
        status = Status.IN_PROGRESS
    # Only the reply that stopped the first-response clock (it carries the SLA snapshot) is the
    # first response; one after an unanswered resolution is not.
    answered = state.first_responded_at or (at if event.sla is not None else None)
    return replace(
        state,
        agent_replies=state.agent_replies + 1,
        first_responded_at=answered,
        status=status,
        clocks=clocks,
    )


def _flag(state: Ticket, name: SlaClock, *, warned: bool = False, breached: bool = False) -> Ticket:
    clock = state.clocks[name]
    if warned:
        clock = replace(clock, warned=True, warn_at=None)
    if breached:
        clock = replace(clock, breached=True)
    return replace(state, clocks={**state.clocks, name: clock})


# ----------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Agent:
    """An agent who can take tickets: skills are ticket types, channels and `senior`."""

    agent_id: str
    skills: frozenset[str]
    capacity: int = 10


@dataclass(frozen=True)
class Suggestion:
    agent_id: str
    score: float
    open_tickets: int
    reason: str


def suggest_agents(
    ticket: Ticket, agents: Sequence[Agent], open_tickets: dict[str, int]
) -> list[Suggestion]:
    """Ranks agents by skill match (type, channel; senior for urgent and complaints) and load.

    Score = matched required skills / required skills − load / capacity; agents at capacity are
    left out. Ties go to the less loaded agent, then by id for a stable order.
    """
    required = {ticket.type.value, ticket.channel.value}
    if ticket.priority is Priority.URGENT or ticket.type is TicketType.COMPLAINT:
        required.add("senior")
    ranked = []
    for agent in agents:
        load = open_tickets.get(agent.agent_id, 0)
        if load >= agent.capacity:
            continue
        matched = required & agent.skills
        score = len(matched) / len(required) - load / agent.capacity
        reason = f"skills {', '.join(sorted(matched)) or 'none'}; {load}/{agent.capacity} open"
        ranked.append(Suggestion(agent.agent_id, round(score, 4), load, reason))
    ranked.sort(key=lambda s: (-s.score, s.open_tickets, s.agent_id))
    return ranked
