"""The complaint procedure (003 ch.5, DOMAIN §1): six ordered steps, each an event with who and
when; a missed follow-up escalates (001); a complaint closes only with an outcome and a summary."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from careops_published.sealed import SealedText

from ticketing.domain.errors import IllegalTransition, require
from ticketing.domain.values import MAX_SUBJECT, MAX_TEXT

MAX_OPTIONS = 10
ESCALATION_TEAM = "complaints"
# The timer kind of a committed follow-up (the timer projection schedules it, the app fires it).
FOLLOW_UP_TIMER = "complaint_follow_up"


class ComplaintStep(StrEnum):
    """The six steps, in the order they must be taken."""

    LISTEN = "listen"  # the complaint is heard and acknowledged
    CONFIRM = "confirm"  # the problem restated to the customer
    APOLOGISE = "apologise"
    SOLVE = "solve"  # a concrete plan, the options offered, a committed follow-up time
    FOLLOW_UP = "follow_up"  # at the committed time: the outcome told to the customer
    SUMMARISE = "summarise"  # root cause, prevention, shared with the team


ORDER: tuple[ComplaintStep, ...] = tuple(ComplaintStep)


@dataclass(frozen=True)
class RecordComplaintStep:
    """Record one step of a complaint; `by` is the caller (set at the edge)."""

    step: ComplaintStep | None
    by: str = ""
    note: str = ""
    plan: str = ""
    options: tuple[str, ...] = ()
    follow_up_at: datetime | None = None
    outcome: str = ""
    root_cause: str = ""
    prevention: str = ""
    shared: bool = False


@dataclass(frozen=True)
class FireFollowUpTimer:
    """Sent by the timer scheduler when a complaint's committed follow-up time is due."""

    due_at: datetime


@dataclass(frozen=True)
class ComplaintStepRecorded:
    """A complaint step was taken by `by` (the event's time is when)."""

    step: ComplaintStep
    by: str
    note: str = ""
    plan: str = ""
    options: tuple[str, ...] = ()
    follow_up_at: datetime | None = None
    outcome: str = ""
    root_cause: str = ""
    prevention: str = ""
    shared: bool = False
    # A follow-up recorded after the committed time.
    late: bool = False
    # The free text above, sealed for the ticket's customer (application.py seals it).
    sealed: SealedText | None = None


@dataclass(frozen=True)
class ComplaintFollowUpMissed:
    """The committed follow-up time passed without a follow-up (an escalation follows)."""

    due_at: datetime


@dataclass(frozen=True)
class StepTaken:
    """One recorded step as the ticket keeps it."""

    step: ComplaintStep
    by: str
    at: datetime
    detail: ComplaintStepRecorded


@dataclass(frozen=True)
class Complaint:
    """The complaint procedure's state within a ticket."""

    steps: tuple[StepTaken, ...] = ()
    follow_up_due: datetime | None = None
    follow_up_missed: bool = False

    def taken(self, step: ComplaintStep) -> StepTaken | None:
        """Returns the step when it was recorded."""
        return next((item for item in self.steps if item.step is step), None)

    def next_step(self) -> ComplaintStep | None:
        """Returns the first step not yet taken (None when all six are)."""
        return next((step for step in ORDER if self.taken(step) is None), None)

    @property
    def awaiting_follow_up(self) -> bool:
        """Whether a follow-up time is committed and no follow-up recorded yet."""
        return self.follow_up_due is not None and self.taken(ComplaintStep.FOLLOW_UP) is None


def _text(name: str, value: str, *, required: bool, limit: int = MAX_TEXT) -> list[tuple[str, str]]:
    """Returns the violations of one text field."""
    if required and not value.strip():
        return [(name, "must not be empty")]
    if len(value) > limit:
        return [(name, f"must be at most {limit} characters")]
    return []


def _violations(command: RecordComplaintStep, now: datetime) -> list[tuple[str, str]]:
    """Returns the missing or invalid fields of the command's step."""
    match command.step:
        case None:
            return [("step", "must be one of " + ", ".join(ORDER))]
        case ComplaintStep.LISTEN | ComplaintStep.APOLOGISE:
            return _text("note", command.note, required=True)
        case ComplaintStep.CONFIRM:
            return [
                (name, "the restated problem must not be empty")
                for name, _ in _text("note", command.note, required=True)
            ]
        case ComplaintStep.SOLVE:
            violations = _text("plan", command.plan, required=True)
            if not command.options:
                violations.append(("options", "offer the customer at least one option"))
            if len(command.options) > MAX_OPTIONS:
                violations.append(("options", f"at most {MAX_OPTIONS}"))
            for option in command.options:
                violations += _text("options", option, required=True, limit=MAX_SUBJECT)
            if command.follow_up_at is None:
                violations.append(("follow_up_at", "commit to a follow-up time"))
            elif command.follow_up_at <= now:
                violations.append(("follow_up_at", "must be in the future"))
            return violations
        case ComplaintStep.FOLLOW_UP:
            return _text("outcome", command.outcome, required=True)
        case ComplaintStep.SUMMARISE:
            return _text("root_cause", command.root_cause, required=True) + _text(
                "prevention", command.prevention, required=True
            )
    return []


def record_step(
    complaint: Complaint, command: RecordComplaintStep, now: datetime
) -> list[ComplaintStepRecorded | ComplaintFollowUpMissed]:
    """Returns the step's event (and the missed follow-up it reveals when recorded late);
    InvalidCommand for missing fields, IllegalTransition for a step out of order."""
    require(_violations(command, now) + _text("note", command.note, required=False))
    assert command.step is not None
    if complaint.taken(command.step) is not None:
        raise IllegalTransition(f"complaint step {command.step} is already recorded")
    expected = complaint.next_step()
    if expected is not command.step:
        raise IllegalTransition(f"complaint step {command.step} needs step {expected} first")
    events: list[ComplaintStepRecorded | ComplaintFollowUpMissed] = []
    late = False
    if command.step is ComplaintStep.FOLLOW_UP and complaint.follow_up_due is not None:
        late = now > complaint.follow_up_due
        if late and not complaint.follow_up_missed:
            # The timer had not fired yet: the miss is an event however it was found.
            events.append(ComplaintFollowUpMissed(complaint.follow_up_due))
    fields = {
        ComplaintStep.SOLVE: {"plan", "options", "follow_up_at"},
        ComplaintStep.FOLLOW_UP: {"outcome"},
        ComplaintStep.SUMMARISE: {"root_cause", "prevention", "shared"},
    }.get(command.step, set())
    events.append(
        ComplaintStepRecorded(
            step=command.step,
            by=command.by,
            note=command.note,
            plan=command.plan if "plan" in fields else "",
            options=command.options if "options" in fields else (),
            follow_up_at=command.follow_up_at if "follow_up_at" in fields else None,
            outcome=command.outcome if "outcome" in fields else "",
            root_cause=command.root_cause if "root_cause" in fields else "",
            prevention=command.prevention if "prevention" in fields else "",
            shared=command.shared if "shared" in fields else False,
            late=late,
        )
    )
    return events


def follow_up_due(
    complaint: Complaint, command: FireFollowUpTimer, now: datetime
) -> list[ComplaintFollowUpMissed]:
    """Returns the missed follow-up when the committed time passed without one; nothing when
    it was followed up, already missed, or the timer is stale or early."""
    due = complaint.follow_up_due
    if not complaint.awaiting_follow_up or complaint.follow_up_missed or due is None:
        return []
    if due != command.due_at or due > now:
        return []
    return [ComplaintFollowUpMissed(due)]


def missing_for_close(complaint: Complaint) -> list[ComplaintStep]:
    """Returns what a complaint lacks to close: the outcome told (follow-up) and the summary."""
    return [
        step
        for step in (ComplaintStep.FOLLOW_UP, ComplaintStep.SUMMARISE)
        if complaint.taken(step) is None
    ]


def evolve_complaint(
    complaint: Complaint, event: ComplaintStepRecorded | ComplaintFollowUpMissed, at: datetime
) -> Complaint:
    """Returns the complaint state after one of its events."""
    if isinstance(event, ComplaintFollowUpMissed):
        return replace(complaint, follow_up_missed=True)
    steps = (*complaint.steps, StepTaken(event.step, event.by, at, event))
    due = event.follow_up_at if event.step is ComplaintStep.SOLVE else complaint.follow_up_due
    return replace(complaint, steps=steps, follow_up_due=due)
