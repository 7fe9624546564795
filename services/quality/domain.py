"""Survey aggregate (one per ticket, with its follow-up) and SLA what-if replay. Pure: no I/O,
no clock, no protobuf.

decide(state, command, now=...) -> events;  evolve(state, event, at) -> state.
The lower half holds `replay_sla`, which recomputes SLA outcomes of a ticket's recorded timeline
under any policy. Other contexts' events are read as their published views (careops_published).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from careops_emotion import Emotion
from careops_published.sealed import SealedText
from careops_sla.clock import Calendar, Targets, TicketClocks

MAX_COMMENT = 5_000
MAX_NOTE = 2_000
MAX_ID = 100
FOLLOW_UP_AFTER = timedelta(hours=24)


# ----------------------------------------------------------------------------- errors


class QualityError(Exception):
    """Base of the quality domain's errors."""


class InvalidCommand(QualityError):
    """The command's fields are invalid; `violations` lists (field, description)."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in violations))
        self.violations = tuple(violations)


class TicketUnknown(QualityError):
    """Quality has never seen the ticket (in its projection of ticketing's events)."""


class SurveyNotFound(QualityError):
    """The ticket has no survey."""


class SurveyAlreadySubmitted(QualityError):
    """The ticket already has its one survey."""


class IllegalTransition(QualityError):
    """The command is not allowed in the survey's current state."""


# ----------------------------------------------------------------------------- events


class QuestionKind(StrEnum):
    """What an answer to a survey question is (quality.survey_templates)."""

    SCALE_1_5 = "scale_1_5"
    SCALE_0_10 = "scale_0_10"
    YES_NO = "yes_no"
    OPEN_TEXT = "open_text"


@dataclass(frozen=True)
class RecordedAnswer:
    """One answered question as the survey event keeps it (`text`: personal data)."""

    question_id: str
    kind: QuestionKind
    score: int = 0
    yes: bool = False
    text: str = ""


@dataclass(frozen=True)
class SurveySubmitted:
    ticket_id: str
    customer_id: str
    agent_id: str
    channel: str
    ticket_type: str
    priority: str
    csat: int
    nps: int
    has_nps: bool
    comment: str
    emotion: Emotion
    emotion_score: float
    submitted_at: datetime
    follow_up_required: bool
    follow_up_due_at: datetime | None = None
    ticket_opened_at: datetime | None = None
    # Empty (surveys before templates): the built-in "default", version 1.
    template_id: str = ""
    template_version: int = 0
    answers: tuple[RecordedAnswer, ...] = ()
    # The comment and the open answers' text, sealed for the customer (application.py).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class FollowUpOverdue:
    due_at: datetime


@dataclass(frozen=True)
class FollowUpRecorded:
    agent_id: str
    note: str
    solved: bool
    late: bool
    # The note, sealed for the survey's customer (application.py).
    sealed: SealedText | None = None


SurveyEvent = SurveySubmitted | FollowUpOverdue | FollowUpRecorded

# The free text of each event: written by or about the customer, so personal data (issue 12).
# On the log it is sealed for the survey's customer; after an erasure it reads as "".
FREE_TEXT: dict[type, tuple[str, ...]] = {
    SurveySubmitted: ("comment", "answers.text"),
    FollowUpRecorded: ("note",),
}


# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class TicketFacts:
    """What quality's ticket projection knows of a ticket when a survey arrives."""

    ticket_id: str
    customer_id: str
    agent_id: str
    channel: str
    ticket_type: str
    priority: str
    resolved: bool
    opened_at: datetime | None = None


@dataclass(frozen=True)
class SubmitSurvey:
    ticket: TicketFacts | None
    csat: int
    nps: int | None
    comment: str
    emotion: Emotion
    emotion_score: float
    follow_up_after: timedelta = FOLLOW_UP_AFTER
    template_id: str = ""
    template_version: int = 0
    answers: tuple[RecordedAnswer, ...] = ()


@dataclass(frozen=True)
class MarkFollowUpOverdue:
    """Sent by the timer scheduler when a follow-up's due time has passed."""


@dataclass(frozen=True)
class RecordFollowUp:
    agent_id: str
    note: str
    solved: bool


Command = SubmitSurvey | MarkFollowUpOverdue | RecordFollowUp


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Survey:
    ticket_id: str
    exists: bool = False
    submitted: SurveySubmitted | None = None
    overdue: bool = False
    done_at: datetime | None = None
    follow_up: FollowUpRecorded | None = None


def initial(ticket_id: str) -> Survey:
    """Returns the state of a ticket without a survey."""
    return Survey(ticket_id=ticket_id)


def is_negative(csat: int, nps: int | None) -> bool:
    """Negative feedback (DOMAIN §4): CSAT <= 2 or NPS <= 6."""
    return csat <= 2 or (nps is not None and nps <= 6)


# ----------------------------------------------------------------------------- decide


def _text(name: str, value: str, *, required: bool, limit: int) -> list[tuple[str, str]]:
    if required and not value.strip():
        return [(name, "must not be empty")]
    if len(value) > limit:
        return [(name, f"must be at most {limit} characters")]
    return []


def validate_survey(csat: int, nps: int | None, comment: str) -> list[tuple[str, str]]:
    """Returns the violations of a survey's answers."""
    violations = []
    if not 1 <= csat <= 5:
        violations.append(("csat", f"must be 1..5, got {csat}"))
    if nps is not None and not 0 <= nps <= 10:
        violations.append(("nps", f"must be 0..10, got {nps}"))
    return violations + _text("comment", comment, required=False, limit=MAX_COMMENT)


def decide(state: Survey, command: Command, *, now: datetime) -> list[SurveyEvent]:
    """Returns the events a command produces; raises a QualityError when it is not allowed."""
    if isinstance(command, SubmitSurvey):
        return _submit(state, command, now)
    if not state.exists or state.submitted is None:
        raise SurveyNotFound(f"ticket {state.ticket_id} has no survey")
    if isinstance(command, MarkFollowUpOverdue):
        due = state.submitted.follow_up_due_at
        if due is None or state.overdue or state.done_at is not None or due > now:
            return []
        return [FollowUpOverdue(due)]
    violations = _text("agent_id", command.agent_id, required=True, limit=MAX_ID)
    violations += _text("note", command.note, required=True, limit=MAX_NOTE)
    if violations:
        raise InvalidCommand(violations)
    if not state.submitted.follow_up_required:
        raise IllegalTransition(f"the survey of {state.ticket_id} needs no follow-up")
    if state.done_at is not None:
        raise IllegalTransition(f"the follow-up of {state.ticket_id} is already recorded")
    due = state.submitted.follow_up_due_at
    late = state.overdue or (due is not None and now > due)
    return [FollowUpRecorded(command.agent_id.strip(), command.note, command.solved, late)]


def _submit(state: Survey, command: SubmitSurvey, now: datetime) -> list[SurveyEvent]:
    violations = validate_survey(command.csat, command.nps, command.comment)
    if violations:
        raise InvalidCommand(violations)
    ticket = command.ticket
    if ticket is None:
        raise TicketUnknown(f"ticket {state.ticket_id} is unknown")
    if state.exists:
        raise SurveyAlreadySubmitted(f"ticket {state.ticket_id} already has a survey")
    if not ticket.resolved:
        raise IllegalTransition(f"ticket {state.ticket_id} is not resolved yet")
    negative = is_negative(command.csat, command.nps)
    return [
        SurveySubmitted(
            ticket_id=ticket.ticket_id,
            customer_id=ticket.customer_id,
            agent_id=ticket.agent_id,
            channel=ticket.channel,
            ticket_type=ticket.ticket_type,
            priority=ticket.priority,
            csat=command.csat,
            nps=command.nps or 0,
            has_nps=command.nps is not None,
            comment=command.comment,
            emotion=command.emotion,
            emotion_score=command.emotion_score,
            submitted_at=now,
            follow_up_required=negative,
            follow_up_due_at=now + command.follow_up_after if negative else None,
            ticket_opened_at=ticket.opened_at,
            template_id=command.template_id,
            template_version=command.template_version,
            answers=command.answers,
        )
    ]


def evolve(state: Survey, event: SurveyEvent, at: datetime) -> Survey:
    """Returns the state after one event recorded at `at`."""
    match event:
        case SurveySubmitted():
            return replace(state, exists=True, submitted=event)
        case FollowUpOverdue():
            return replace(state, overdue=True)
        case FollowUpRecorded():
            return replace(state, done_at=at, follow_up=event)
    return state


# ----------------------------------------------------------------------------- other contexts


# Quality reads ticketing's and incident's events as their published views
# (careops_published.ticketing / .incident): enum fields arrive as the lower-case value names
# ("chat", "high", "agent", "first_response", "a"), None when unspecified, so quality keeps no
# copy of the other contexts' vocabularies. Incident levels, upper-cased, label the KPIs.
INCIDENT_LEVELS = ("A", "B", "C")


# ----------------------------------------------------------------------------- SLA what-if


class Policy(Protocol):
    """What the replay needs of an SLA policy (implemented by careops_sla.SlaPolicy)."""

    @property
    def version(self) -> str: ...

    @property
    def warn_ratio(self) -> float: ...

    def pauses(self, hold_reason: str) -> bool: ...

    def targets_for(
        self, *, channel: str, priority: str, tier: str, ticket_type: str = ""
    ) -> Targets: ...

    def calendar_for(self, *, channel: str) -> Calendar: ...


class Step(StrEnum):
    """The SLA-relevant moments of a ticket, recorded by the timeline projection."""

    OPENED = "opened"
    AGENT_REPLY = "agent_reply"
    PAUSED = "paused"
    RESUMED = "resumed"
    PRIORITY = "priority"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    # A newer SLA policy version applied to the open ticket (ticketing's SlaPolicyApplied).
    POLICY = "policy"


@dataclass(frozen=True)
class TimelineStep:
    at: datetime
    step: Step
    # The priority for OPENED and PRIORITY steps; the hold reason for PAUSED ("" before issue
    # 13: a hold that paused the clocks); the version label for POLICY.
    value: str = ""


@dataclass(frozen=True)
class TicketSla:
    """Where a ticket's SLA stands after replaying its timeline."""

    responded: bool
    first_response_breached: bool
    resolved: bool
    resolution_breached: bool

    @property
    def unanswered_breach(self) -> bool:
        """Breached without any first response: a response due and missed (docs/kpis.md)."""
        return self.first_response_breached and not self.responded


def replay_sla(
    *,
    channel: str,
    priority: str,
    tier: str,
    steps: Sequence[TimelineStep],
    policy: Policy,
    as_of: datetime,
    ticket_type: str = "",
    versions: Callable[[str], Policy] | None = None,
) -> TicketSla:
    """Replays a ticket's SLA clocks under `policy` with the model ticketing decides with
    (`careops_sla.TicketClocks`): business time of the channel's calendar, paused while waiting
    on a hold the policy pauses for, first response stopped by an agent reply (also while
    paused) or the resolution, resolution restarted by a reopening. A clock is breached when
    its consumed time exceeded its target: when it stopped, when its breach timer would have
    fired (checked at every later step), or at `as_of` if still running.

    With `versions` (label -> policy), the ticket is replayed as it was decided: from `policy`
    (the version it was opened under), moved at each POLICY step to that version (the clocks
    rebased, as ticketing's SlaPolicyApplied does). Without, POLICY steps change nothing: the
    whole timeline under `policy` (a draft)."""
    calendar = policy.calendar_for(channel=channel)

    def targets() -> Targets:
        return policy.targets_for(
            channel=channel, priority=priority, tier=tier, ticket_type=ticket_type
        )

    clocks: TicketClocks | None = None
    responded = False
    for item in steps:
        at = item.at
        if item.step is Step.OPENED:
            priority = item.value or priority
            clocks = TicketClocks.opened(targets(), at, calendar, policy.warn_ratio)
            continue
        if clocks is None:
            continue
        clocks = clocks.breach_due(at, calendar)
        match item.step:
            case Step.AGENT_REPLY if clocks.answers():
                responded = True
                clocks = clocks.agent_reply(at, calendar)
            case Step.PAUSED if not item.value or policy.pauses(item.value):
                clocks = clocks.pause(at, calendar)
            case Step.RESUMED:
                clocks = clocks.resume(at, calendar, policy.warn_ratio)
            case Step.PRIORITY:
                priority = item.value or priority
                clocks = clocks.retarget(targets(), at, calendar, policy.warn_ratio)
            case Step.RESOLVED:
                clocks = clocks.resolve(at, calendar)
            case Step.REOPENED:
                clocks = clocks.reopen(at, calendar, policy.warn_ratio)
            case Step.POLICY if versions is not None:
                policy = versions(item.value)
                calendar = policy.calendar_for(channel=channel)
                clocks = clocks.rebase(targets(), calendar, policy.warn_ratio)
                clocks = clocks.breach_due(at, calendar)
    if clocks is None:
        return TicketSla(False, False, False, False)
    first, resolution = clocks.clocks()
    return TicketSla(
        responded,
        first.is_breached(as_of, calendar),
        resolution.stopped_at is not None,
        resolution.is_breached(as_of, calendar),
    )


def sla_compliance(*, on_time: int, first_responses: int, unanswered_breaches: int) -> float:
    """On-time first responses / first responses due (answered, or breached unanswered): a
    ticket never answered after its deadline passed counts against compliance."""
    due = first_responses + unanswered_breaches
    return on_time / due if due else 0.0


# ----------------------------------------------------------------------------- KPIs


@dataclass(frozen=True)
class CrisisKpis:
    level: str
    incidents: int = 0
    acknowledged: int = 0
    acknowledge_seconds_mean: float = 0.0
    resolved: int = 0
    resolve_seconds_mean: float = 0.0


@dataclass(frozen=True)
class ScoreCount:
    score: int
    count: int = 0


@dataclass(frozen=True)
class YesNoCount:
    template_id: str
    question_id: str
    yes: int = 0
    no: int = 0


CSAT_SCORES = tuple(range(1, 6))
NPS_SCORES = tuple(range(0, 11))


@dataclass(frozen=True)
class Kpis:
    """Every KPI of docs/kpis.md for one filter and period (ratios 0..1, 0 without data)."""

    tickets_opened: int = 0
    tickets_resolved: int = 0
    backlog: int = 0
    surveys: int = 0
    csat_satisfied_ratio: float = 0.0
    csat_mean: float = 0.0
    nps_responses: int = 0
    nps: float = 0.0
    fcr_ratio: float = 0.0
    first_responses: int = 0
    first_response_seconds_mean: float = 0.0
    resolution_seconds_mean: float = 0.0
    aht_seconds: float = 0.0
    first_responses_on_time: int = 0
    first_responses_due: int = 0
    sla_compliance_ratio: float = 0.0
    sla_breaches: int = 0
    escalation_ratio: float = 0.0
    reopen_ratio: float = 0.0
    survey_response_ratio: float = 0.0
    crisis: tuple[CrisisKpis, ...] = ()
    quality_score: float = 0.0
    # Full scales, one entry per score (zeros kept): 1..5 and 0..10.
    csat_distribution: tuple[ScoreCount, ...] = ()
    nps_distribution: tuple[ScoreCount, ...] = ()
    yes_no: tuple[YesNoCount, ...] = ()


@dataclass(frozen=True)
class ScoreComponent:
    name: str
    value: float
    weight: float
    present: bool


# Quality (what the customer felt) 0.55, efficiency (how the work went) 0.45: never one alone.
SCORE_WEIGHTS = {"csat": 0.30, "nps": 0.10, "no_reopen": 0.15, "fcr": 0.20, "sla": 0.25}


def score_components(kpis: Kpis) -> list[ScoreComponent]:
    """Returns the balanced score's inputs, each 0..1, and whether it had data."""
    resolved = kpis.tickets_resolved > 0
    values = {
        "csat": (kpis.csat_satisfied_ratio, kpis.surveys > 0),
        "nps": ((kpis.nps + 100.0) / 200.0, kpis.nps_responses > 0),
        "no_reopen": (1.0 - kpis.reopen_ratio, resolved),
        "fcr": (kpis.fcr_ratio, resolved),
        "sla": (kpis.sla_compliance_ratio, kpis.first_responses_due > 0),
    }
    return [
        ScoreComponent(name, values[name][0], weight, values[name][1])
        for name, weight in SCORE_WEIGHTS.items()
    ]


def quality_score(components: Sequence[ScoreComponent]) -> float:
    """Returns 100 · Σ w·x / Σ w over the components with data (0 when none has data)."""
    present = [c for c in components if c.present]
    total = sum(c.weight for c in present)
    if not total:
        return 0.0
    return round(100.0 * sum(c.weight * c.value for c in present) / total, 4)


# ----------------------------------------------------------------- who reads whose scorecard

# Rule 4 of docs/permissions.md; quality.application.authorize_scorecard applies it to the
# caller the gRPC edge passes in.
READS_ANY_SCORECARD = frozenset({"senior_agent", "supervisor", "admin"})


def may_read_scorecard(
    subject: str, roles: Iterable[str], *, agent_id: str = "", team: str = ""
) -> bool:
    """Returns whether `subject` holding `roles` may read the scorecard of `agent_id` or of
    `team`: seniors and up read any; an agent reads only their own."""
    held = set(roles)
    if READS_ANY_SCORECARD & held:
        return True
    return "agent" in held and bool(subject) and not team and agent_id == subject


# ----------------------------------------------------------------------------- pauses (issue 13)

# A pause right before a breach (docs/kpis.md "Pauses"): the hold paused a clock that had used at
# least this share of its target, and not more than all of it, when the hold began.
BEFORE_BREACH_SHARE = 0.8


@dataclass(frozen=True)
class ClockAtHold:
    """What a hold did to one SLA clock when it began (from the TicketHeld snapshot)."""

    paused: bool
    # Share of the target used as the hold began; None when the clock has no target.
    share: float | None
    before_breach: bool


def clock_at_hold(
    *, target: timedelta, consumed: timedelta, paused: bool, breached: bool
) -> ClockAtHold:
    """Returns whether the hold paused the clock, the share of its target it had used and
    whether the pause began right before a breach: paused with BEFORE_BREACH_SHARE..100 % of
    the target used and not yet breached."""
    if target <= timedelta(0):
        return ClockAtHold(paused, None, False)
    share = consumed / target
    before = paused and not breached and BEFORE_BREACH_SHARE <= share <= 1.0
    return ClockAtHold(paused, share, before)


@dataclass(frozen=True)
class PauseSums:
    """The holds of one agent (who set them; "" for everyone) and reason in a period."""

    agent_id: str
    reason: str
    holds: int = 0
    # Holds not yet ended: their paused time is not known yet (counted 0).
    open_holds: int = 0
    tickets: int = 0
    first_response_paused_seconds: float = 0.0
    resolution_paused_seconds: float = 0.0
    pauses_before_breach: int = 0


@dataclass(frozen=True)
class PauseRow:
    """A row of the pause report: the sums, and the share of the agent's handled tickets held
    for the reason (tickets / handled_tickets)."""

    agent_id: str
    reason: str
    holds: int
    open_holds: int
    tickets: int
    handled_tickets: int
    ticket_share: float
    first_response_paused_seconds: float
    resolution_paused_seconds: float
    pauses_before_breach: int


@dataclass(frozen=True)
class PauseReport:
    rows: tuple[PauseRow, ...] = ()
    # One per reason (every reason, zeros kept), agent_id "".
    totals: tuple[PauseRow, ...] = ()


def handled_tickets(
    *,
    opened: dict[str, int],
    held: Iterable[tuple[str, str]],
    counted: set[tuple[str, str]],
) -> dict[str, int]:
    """Returns the tickets each agent handled in a period ("" for everyone): those opened in it
    with the agent as assignee (`opened`, per assignee), plus those the agent held in it
    (`held`: (agent, ticket)) not among the former (`counted`: (assignee, ticket) pairs of held
    tickets that `opened` counts)."""
    by_agent: dict[str, set[str]] = {}
    for agent, ticket in held:
        by_agent.setdefault(agent, set()).add(ticket)
    result = {
        agent: opened.get(agent, 0) + len({t for t in ticket_ids if (agent, t) not in counted})
        for agent, ticket_ids in by_agent.items()
    }
    counted_ids = {ticket for _agent, ticket in counted}
    every = set().union(*by_agent.values()) if by_agent else set()
    result[""] = sum(opened.values()) + len(every - counted_ids)
    return result


def pause_report(
    *,
    rows: Iterable[PauseSums],
    totals: Iterable[PauseSums],
    handled: dict[str, int],
    reasons: Sequence[str],
) -> PauseReport:
    """Returns the pause report: the rows per agent and reason, then one total per reason."""

    def row(sums: PauseSums) -> PauseRow:
        whole = max(handled.get(sums.agent_id, 0), sums.tickets)
        return PauseRow(
            agent_id=sums.agent_id,
            reason=sums.reason,
            holds=sums.holds,
            open_holds=sums.open_holds,
            tickets=sums.tickets,
            handled_tickets=whole,
            ticket_share=sums.tickets / whole if whole else 0.0,
            first_response_paused_seconds=sums.first_response_paused_seconds,
            resolution_paused_seconds=sums.resolution_paused_seconds,
            pauses_before_breach=sums.pauses_before_breach,
        )

    found = {sums.reason: sums for sums in totals}
    every = [*reasons, *sorted(set(found) - set(reasons))]
    return PauseReport(
        rows=tuple(row(sums) for sums in rows),
        totals=tuple(row(found.get(reason, PauseSums("", reason))) for reason in every),
    )
