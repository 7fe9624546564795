"""`decide`: the events a ticket command produces (SLA clocks included), or the TicketError."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Protocol

from careops_emotion import Emotion, classify
from careops_sla.clock import Calendar, Clock, Targets, TicketClocks

from ticketing.domain.checklist import TickChecklistItem, tick
from ticketing.domain.commands import (
    AddReply,
    ApplySlaPolicy,
    AssignTicket,
    ChangePriority,
    CloseTicket,
    Command,
    EscalateTicket,
    FireSlaTimer,
    HoldTicket,
    OpenTicket,
    ReopenTicket,
    ResolveTicket,
    ResumeTicket,
    ReturnToQueue,
)
from ticketing.domain.compensation import (
    ApproveCompensation,
    GrantCompensation,
    RejectCompensation,
    approve,
    grant,
    reject,
)
from ticketing.domain.complaint import (
    ESCALATION_TEAM,
    ComplaintFollowUpMissed,
    FireFollowUpTimer,
    RecordComplaintStep,
    follow_up_due,
    missing_for_close,
    record_step,
)
from ticketing.domain.errors import IllegalTransition, TicketAlreadyExists, TicketNotFound, require
from ticketing.domain.events import (
    PriorityChanged,
    ReplyAdded,
    SlaBreached,
    SlaClockSnapshot,
    SlaPolicyApplied,
    SlaSnapshot,
    SlaWarningRaised,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketEvent,
    TicketHeld,
    TicketOpened,
    TicketReopened,
    TicketResolved,
    TicketResumed,
    TicketReturnedToQueue,
)
from ticketing.domain.ticket import Ticket, evolve
from ticketing.domain.values import (
    ACTIVE,
    MAX_ID,
    MAX_SUBJECT,
    MAX_TEXT,
    Author,
    Channel,
    CustomerTier,
    HoldReason,
    Priority,
    SlaClock,
    SlaTimerKind,
    Status,
    TicketType,
)


class Policy(Protocol):
    """What decide needs of an SLA policy (implemented by careops_sla.SlaPolicy)."""

    @property
    def version(self) -> str: ...

    @property
    def warn_ratio(self) -> float: ...

    @property
    def pausing_hold_reasons(self) -> frozenset[str]:
        """The hold reasons that pause the clocks (values of HoldReason)."""

    def targets_for(
        self, *, channel: str, priority: str, tier: str, ticket_type: str = ""
    ) -> Targets: ...

    def calendar_for(self, *, channel: str) -> Calendar: ...


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
    """Returns the ticket's two clocks as TicketClocks."""
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


class _Context:
    """Everything decide may consult besides state and command."""

    def __init__(self, now: datetime, policy: Policy, channel: Channel) -> None:
        """Holds the time, the policy and the ticket channel's calendar."""
        self.now = now
        self.policy = policy
        self.calendar = policy.calendar_for(channel=channel.value)

    @property
    def warn_ratio(self) -> float:
        """The share of a target after which a warning fires."""
        return self.policy.warn_ratio

    def snapshot(self, clocks: TicketClocks) -> SlaSnapshot:
        """Returns the clocks as of now."""
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


def _text(name: str, value: str, *, required: bool, limit: int) -> list[tuple[str, str]]:
    """Returns the violations of a text field: required and at most `limit` characters."""
    if required and not value.strip():
        return [(name, "must not be empty")]
    if len(value) > limit:
        return [(name, f"must be at most {limit} characters")]
    return []


def _open(state: Ticket, command: OpenTicket, now: datetime, policy: Policy) -> list[TicketEvent]:
    """Opens the ticket and starts both SLA clocks."""
    violations = _text("customer_id", command.customer_id, required=True, limit=MAX_ID)
    violations += _text("subject", command.subject, required=True, limit=MAX_SUBJECT)
    violations += _text("description", command.description, required=False, limit=MAX_TEXT)
    violations += _text("product", command.product, required=False, limit=MAX_ID)
    for name in ("channel", "type", "priority"):
        if getattr(command, name) is None:
            violations.append((name, f"must be specified (not {name.upper()}_UNSPECIFIED)"))
    require(violations)
    if state.exists:
        raise TicketAlreadyExists(f"ticket {state.ticket_id} already exists")
    assert command.channel and command.priority and command.type
    tier = command.tier or CustomerTier.REGULAR
    ctx = _Context(now, policy, command.channel)
    targets = policy.targets_for(
        channel=command.channel.value,
        priority=command.priority.value,
        tier=tier.value,
        ticket_type=command.type.value,
    )
    clocks = TicketClocks.opened(targets, now, ctx.calendar, policy.warn_ratio)
    emotion = classify(f"{command.subject}\n{command.description}").emotion
    opened: list[TicketEvent] = [
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
            emotion=emotion,
            sla_policy_version=policy.version,
        )
    ]
    if emotion is not Emotion.ANGRY:
        return opened  # only anger has effects (_emotion_effects): no state to evolve for them
    state = evolve(state, opened[0], now)
    return [*opened, *_emotion_effects(state, emotion, ctx)]


def _not_in(state: Ticket, allowed: frozenset[Status], action: str) -> None:
    """Raises IllegalTransition unless the ticket's status is in `allowed`."""
    if state.status not in allowed:
        raise IllegalTransition(
            f"cannot {action} ticket {state.ticket_id}: "
            f"it is {state.status.value.replace('_', ' ')}"
        )


def _assign(state: Ticket, command: AssignTicket, ctx: _Context) -> list[TicketEvent]:
    """Assigns the ticket; nothing when the agent already has it."""
    require(_text("agent_id", command.agent_id, required=True, limit=MAX_ID))
    _not_in(state, ACTIVE, "assign")
    if command.agent_id == state.assignee_id:
        return []
    if command.from_queue and (state.assignee_id or state.status is not Status.OPEN):
        return []
    return [TicketAssigned(command.agent_id, command.suggested, command.reason)]


def _return_to_queue(state: Ticket, command: ReturnToQueue, ctx: _Context) -> list[TicketEvent]:
    """Unassigns a ticket `command.agent_id` holds but has not started (no agent reply);
    nothing otherwise (another agent has it, or work began)."""
    require(_text("agent_id", command.agent_id, required=True, limit=MAX_ID))
    if state.assignee_id != command.agent_id or state.status is not Status.ASSIGNED:
        return []
    if state.agent_replies:
        return []
    return [TicketReturnedToQueue(command.agent_id, command.reason[:MAX_SUBJECT])]


def _reply(state: Ticket, command: AddReply, ctx: _Context) -> list[TicketEvent]:
    """Adds a reply or an internal note; an agent's first public reply stops the
    first-response clock. A note changes no clock and no status."""
    violations = _text("body", command.body, required=True, limit=MAX_TEXT)
    violations += _text("author_id", command.author_id, required=False, limit=MAX_ID)
    violations += _text("macro_id", command.macro_id, required=False, limit=MAX_ID)
    if command.author is None:
        violations.append(("author", "must be specified (AUTHOR_AGENT or AUTHOR_CUSTOMER)"))
    elif command.internal and command.author is not Author.AGENT:
        violations.append(("visibility", "only an agent writes an internal note"))
    require(violations)
    _not_in(state, ACTIVE | {Status.RESOLVED}, "reply to")
    assert command.author is not None
    message = ReplyAdded(
        command.author,
        command.author_id,
        command.body,
        internal=command.internal,
        channel=command.channel or state.channel,
        macro_id=command.macro_id,
        macro_version=command.macro_version,
    )
    if command.internal:
        return [message]
    if command.author is Author.CUSTOMER:
        message = replace(message, emotion=classify(command.body).emotion)
    clocks = _pair(state.clocks)
    if command.author is Author.AGENT and clocks.answers():
        answered = clocks.agent_reply(ctx.now, ctx.calendar)
        reply = replace(message, sla=ctx.snapshot(answered))
        return [*_late_breaches(clocks, answered, ctx.calendar), reply]
    events: list[TicketEvent] = [message]
    waiting_for_customer = state.hold_reason is HoldReason.WAITING_CUSTOMER
    if (
        command.author is Author.CUSTOMER
        and state.status is Status.ON_HOLD
        and waiting_for_customer
    ):
        events += _resume(state, ResumeTicket(), ctx)
    if message.emotion is not None:
        for event in events:
            state = evolve(state, event, ctx.now)
        events += _emotion_effects(state, message.emotion, ctx)
    return events


# One step up per angry customer message; urgent stays urgent.
_RAISED = {
    Priority.LOW: Priority.NORMAL,
    Priority.NORMAL: Priority.HIGH,
    Priority.HIGH: Priority.URGENT,
}
ANGRY_REASON = "angry customer"


def _emotion_effects(state: Ticket, emotion: Emotion, ctx: _Context) -> list[TicketEvent]:
    """The events a customer message's emotion causes (DOMAIN §4; the one place it steers).

    Angry raises the priority one step (a PriorityChanged, reason "angry customer"); the state's
    `angry_customer` then makes routing require a senior agent. Anxious and satisfied only set
    flags on the ticket (evolved from the message event itself): no further event."""
    raised = _RAISED.get(state.priority)
    if emotion is not Emotion.ANGRY or raised is None or state.status not in ACTIVE:
        return []
    return _change_priority(state, ChangePriority(raised, ANGRY_REASON), ctx)


def _change_priority(state: Ticket, command: ChangePriority, ctx: _Context) -> list[TicketEvent]:
    """Changes the priority and retargets the clocks."""
    violations = _text("reason", command.reason, required=False, limit=MAX_SUBJECT)
    if command.priority is None:
        violations.append(("priority", "must be specified (not PRIORITY_UNSPECIFIED)"))
    require(violations)
    _not_in(state, ACTIVE, "change the priority of")
    assert command.priority is not None
    if command.priority is state.priority:
        return []
    targets = ctx.policy.targets_for(
        channel=state.channel.value,
        priority=command.priority.value,
        tier=state.tier.value,
        ticket_type=state.type.value,
    )
    clocks = _pair(state.clocks).retarget(targets, ctx.now, ctx.calendar, ctx.warn_ratio)
    return [PriorityChanged(state.priority, command.priority, command.reason, ctx.snapshot(clocks))]


def _escalate(state: Ticket, command: EscalateTicket, ctx: _Context) -> list[TicketEvent]:
    """Escalates the ticket one level."""
    violations = _text("reason", command.reason, required=True, limit=MAX_SUBJECT)
    violations += _text("to_team", command.to_team, required=False, limit=MAX_ID)
    require(violations)
    _not_in(state, ACTIVE, "escalate")
    return [TicketEscalated(state.escalation_level + 1, command.to_team, command.reason)]


def _hold(state: Ticket, command: HoldTicket, ctx: _Context) -> list[TicketEvent]:
    """Holds the ticket; waiting for the customer pauses the clocks."""
    violations = _text("note", command.note, required=False, limit=MAX_SUBJECT)
    if command.reason is None:
        violations.append(("reason", "must be specified (not HOLD_REASON_UNSPECIFIED)"))
    require(violations)
    _not_in(state, ACTIVE - {Status.ON_HOLD}, "put on hold")
    assert command.reason is not None
    if command.reason.value not in ctx.policy.pausing_hold_reasons:
        return [TicketHeld(command.reason, command.note, clocks_paused=False)]
    clocks = _pair(state.clocks).pause(ctx.now, ctx.calendar)
    return [TicketHeld(command.reason, command.note, True, ctx.snapshot(clocks))]


def _resume(state: Ticket, command: ResumeTicket, ctx: _Context) -> list[TicketEvent]:
    """Resumes a held ticket and its clocks."""
    _not_in(state, frozenset({Status.ON_HOLD}), "resume")
    if not any(clock.paused for clock in state.clocks.values()):
        return [TicketResumed()]
    clocks = _pair(state.clocks).resume(ctx.now, ctx.calendar, ctx.warn_ratio)
    return [TicketResumed(_paused_for(state, ctx.snapshot(clocks), ctx))]


def _paused_for(state: Ticket, sla: SlaSnapshot, ctx: _Context) -> SlaSnapshot:
    """Returns the snapshot of the event ending a hold with, on each clock the hold paused, the
    business time it stayed paused (pause accountability, issue 13); unchanged off hold."""
    if state.status is not Status.ON_HOLD or state.held_at is None:
        return sla
    paused = {name for name, clock in state.clocks.items() if clock.paused}
    spent = ctx.calendar.business_time_between(state.held_at, ctx.now)
    return SlaSnapshot(
        tuple(
            replace(item, paused_for=spent) if item.clock in paused else item for item in sla.clocks
        )
    )


def _resolve(state: Ticket, command: ResolveTicket, ctx: _Context) -> list[TicketEvent]:
    """Resolves the ticket and stops the resolution clock."""
    require(_text("resolution", command.resolution, required=False, limit=MAX_TEXT))
    _not_in(state, ACTIVE, "resolve")
    before = _pair(state.clocks)
    clocks = before.resolve(ctx.now, ctx.calendar)
    first_contact = state.agent_replies <= 1 and state.reopen_count == 0
    sla = _paused_for(state, ctx.snapshot(clocks), ctx)
    resolved = TicketResolved(command.resolution, first_contact, sla)
    return [*_late_breaches(before, clocks, ctx.calendar), resolved]


def _reopen(state: Ticket, command: ReopenTicket, ctx: _Context) -> list[TicketEvent]:
    """Reopens a resolved ticket and restarts the resolution clock."""
    require(_text("reason", command.reason, required=False, limit=MAX_SUBJECT))
    _not_in(state, frozenset({Status.RESOLVED}), "reopen")
    clocks = _pair(state.clocks).reopen(ctx.now, ctx.calendar, ctx.warn_ratio)
    return [TicketReopened(command.reason, ctx.snapshot(clocks))]


def _close(state: Ticket, command: CloseTicket, ctx: _Context) -> list[TicketEvent]:
    """Closes a resolved ticket."""
    require(_text("note", command.note, required=False, limit=MAX_SUBJECT))
    _not_in(state, frozenset({Status.RESOLVED}), "close")
    if state.type is TicketType.COMPLAINT and (missing := missing_for_close(state.complaint)):
        raise IllegalTransition(
            "a complaint closes only once the outcome is told to the customer and summarised; "
            "missing step " + ", ".join(missing)
        )
    return [TicketClosed(command.note)]


def _escalated(state: Ticket, events: list[TicketEvent]) -> list[TicketEvent]:
    """Appends the escalation a missed complaint follow-up causes (001: it escalates)."""
    for event in list(events):
        if isinstance(event, ComplaintFollowUpMissed):
            reason = f"complaint follow-up missed (committed {event.due_at.isoformat()})"
            level = state.escalation_level + 1
            events.append(TicketEscalated(level, ESCALATION_TEAM, reason))
    return events


def _complaint_step(
    state: Ticket, command: RecordComplaintStep, ctx: _Context
) -> list[TicketEvent]:
    """Records one step of a complaint's procedure (complaints only, while not closed)."""
    if state.type is not TicketType.COMPLAINT:
        raise IllegalTransition(f"ticket {state.ticket_id} is a {state.type}, not a complaint")
    _not_in(state, ACTIVE | frozenset({Status.RESOLVED}), "record a complaint step on")
    return _escalated(state, [*record_step(state.complaint, command, ctx.now)])


def _tick(state: Ticket, command: TickChecklistItem, ctx: _Context) -> list[TicketEvent]:
    """Ticks one handling step of the ticket's type (while not closed)."""
    _not_in(state, ACTIVE | frozenset({Status.RESOLVED}), "tick a checklist item on")
    return [*tick(state.type, state.checklist, command)]


def _fire_follow_up(state: Ticket, command: FireFollowUpTimer, ctx: _Context) -> list[TicketEvent]:
    """Escalates a complaint whose committed follow-up time passed without a follow-up."""
    if state.status is Status.CLOSED:
        return []
    return _escalated(state, [*follow_up_due(state.complaint, command, ctx.now)])


def _fire(state: Ticket, command: FireSlaTimer, ctx: _Context) -> list[TicketEvent]:
    """Raises a due SLA warning or breach; nothing when it no longer applies."""
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


def _apply_policy(state: Ticket, command: ApplySlaPolicy, ctx: _Context) -> list[TicketEvent]:
    """Moves an active ticket to a newer SLA policy version: each clock not yet stopped is
    re-derived from its running segments (TicketClocks.rebase: business time recounted on the
    new calendar) against the new target; a stopped clock keeps its outcome, a breached one
    stays breached (and one the new target puts over it is breached now)."""
    policy = command.policy
    if state.status not in ACTIVE or state.sla_policy_version == policy.version:
        return []
    calendar = policy.calendar_for(channel=state.channel.value)
    targets = policy.targets_for(
        channel=state.channel.value,
        priority=state.priority.value,
        tier=state.tier.value,
        ticket_type=state.type.value,
    )
    before = _pair(state.clocks)
    clocks = before.rebase(targets, calendar, policy.warn_ratio)
    clocks = clocks.breach_due(ctx.now, calendar)
    applied = _Context(ctx.now, policy, state.channel)
    event = SlaPolicyApplied(policy.version, command.revision, applied.snapshot(clocks))
    return [*_late_breaches(before, clocks, calendar), event]


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
    GrantCompensation: grant,
    ApproveCompensation: approve,
    RejectCompensation: reject,
    ReturnToQueue: _return_to_queue,
    RecordComplaintStep: _complaint_step,
    FireFollowUpTimer: _fire_follow_up,
    TickChecklistItem: _tick,
    ApplySlaPolicy: _apply_policy,
}
