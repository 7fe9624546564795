"""Drills (004 §7): scenarios with their targets, scheduled runs as drill incidents, the report.

A scenario says what incident to declare (matrix type, title, risk factors) and the targets a
run is measured against. Each target has a kind, a target value and a fraction: its bar is
`target x fraction`, met when the achieved figure is at most the bar (times) or at least it
(reputation):

- recovery: minutes from declaration to resolution; "recover within 90% of target" is a target
  of N minutes with fraction 0.9 (bar 0.9 N);
- joint_response: minutes from declaration until every paged team has acknowledged one of its
  pages (the slowest team's first acknowledgement); bar 120 min;
- reputation_recovery: the share (0..1) of reputation recovered, measured outside the platform
  (e.g. a sentiment sample after the exercise) and recorded on the drill; bar 0.85.

A drill is its own aggregate: scheduled at a time with an optional recurrence; each time it
is due its run declares a drill incident (paged for real, marked as a drill, never in KPIs).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from incident.domain.errors import IllegalTransition, NotFound, require
from incident.domain.incident import Incident
from incident.domain.risk import RiskFactors, validate_factors
from incident.domain.values import ID_PATTERN, MAX_TITLE


class TargetKind(StrEnum):
    """What a drill target measures."""

    RECOVERY = "recovery"
    JOINT_RESPONSE = "joint_response"
    REPUTATION_RECOVERY = "reputation_recovery"


class Recurrence(StrEnum):
    """How often a scheduled drill repeats."""

    ONCE = "once"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


class Outcome(StrEnum):
    """A target's result: met, missed, or not measurable yet."""

    MET = "met"
    MISSED = "missed"
    PENDING = "pending"


class DrillStatus(StrEnum):
    """Where a drill is: waiting for its next run, or cancelled, or done (once, and run)."""

    SCHEDULED = "scheduled"
    DONE = "done"
    CANCELLED = "cancelled"


MONTHS = {Recurrence.MONTHLY: 1, Recurrence.QUARTERLY: 3, Recurrence.YEARLY: 12}
# Times are "at most the bar"; a recovered share is "at least the bar".
AT_LEAST = frozenset({TargetKind.REPUTATION_RECOVERY})
UNITS = {
    TargetKind.RECOVERY: "minutes",
    TargetKind.JOINT_RESPONSE: "minutes",
    TargetKind.REPUTATION_RECOVERY: "ratio",
}
# Figures recorded by hand; the others come from the incident's events.
RECORDED = frozenset({TargetKind.REPUTATION_RECOVERY})


@dataclass(frozen=True)
class DrillTarget:
    """One target of a scenario: its bar is `target x fraction` (None kind: unspecified)."""

    kind: TargetKind | None
    target: float
    fraction: float = 1.0

    @property
    def bar(self) -> float:
        return round(self.target * self.fraction, 6)


@dataclass(frozen=True)
class DrillScenario:
    """A drill scenario: the incident a run declares and the targets it is measured against."""

    scenario_id: str
    title: str
    incident_type: str
    factors: RiskFactors | None = None
    targets: tuple[DrillTarget, ...] = ()
    description: str = ""


DEFAULT_SCENARIOS: tuple[DrillScenario, ...] = (
    DrillScenario(
        "single_point_failure",
        "Single-point failure: one core component fails",
        "service_outage",
        RiskFactors(users_affected=2_000, core_system=0.6, elapsed_minutes=10, exposure=0.2),
        (DrillTarget(TargetKind.RECOVERY, 60, 0.9),),
        "Recover within 90% of the 60-minute recovery target (004 §7).",
    ),
    DrillScenario(
        "campaign_crisis",
        "Campaign crisis: a marketing campaign backfires in public",
        "major_product_accident",
        RiskFactors(users_affected=20_000, core_system=0.3, elapsed_minutes=30, exposure=0.9),
        (DrillTarget(TargetKind.REPUTATION_RECOVERY, 0.85),),
        "Reputation recovery of at least 85% (004 §7), recorded on the drill.",
    ),
    DrillScenario(
        "multi_channel_outage",
        "Full multi-channel outage: every customer channel is down",
        "server_crash",
        RiskFactors(users_affected=200_000, core_system=1.0, elapsed_minutes=30, exposure=0.8),
        (DrillTarget(TargetKind.JOINT_RESPONSE, 120),),
        "Joint response of every paged team within 120 minutes (004 §7).",
    ),
)


def validate_scenarios(scenarios: Sequence[DrillScenario]) -> list[tuple[str, str]]:
    """Returns violations: ids, titles, duplicate ids, targets."""
    violations: list[tuple[str, str]] = []
    if not scenarios:
        violations.append(("scenarios", "at least one scenario"))
    ids = [s.scenario_id for s in scenarios]
    if len(set(ids)) != len(ids):
        violations.append(("scenarios", "scenario ids must be unique"))
    for index, scenario in enumerate(scenarios):
        path = f"scenarios[{index}]"
        if not ID_PATTERN.fullmatch(scenario.scenario_id):
            violations.append((f"{path}.scenario_id", "lower-case id like campaign_crisis"))
        if not ID_PATTERN.fullmatch(scenario.incident_type):
            violations.append((f"{path}.incident_type", "lower-case id like server_crash"))
        if not scenario.title.strip() or len(scenario.title) > MAX_TITLE:
            violations.append((f"{path}.title", f"1 to {MAX_TITLE} characters"))
        violations += [(f"{path}.{name}", why) for name, why in validate_factors(scenario.factors)]
        if not scenario.targets:
            violations.append((f"{path}.targets", "at least one target"))
        kinds = [t.kind for t in scenario.targets]
        if len(set(kinds)) != len(kinds):
            violations.append((f"{path}.targets", "one target per kind"))
        for t_index, target in enumerate(scenario.targets):
            t_path = f"{path}.targets[{t_index}]"
            if target.kind is None:
                violations.append((f"{t_path}.kind", "unspecified"))
            if not math.isfinite(target.target) or target.target <= 0:
                violations.append((f"{t_path}.target", "must be a positive number"))
            elif target.kind in AT_LEAST and target.target > 1:
                violations.append((f"{t_path}.target", "a share: at most 1"))
            if not math.isfinite(target.fraction) or not 0 < target.fraction <= 1:
                violations.append((f"{t_path}.fraction", "must be in (0, 1]"))
    return violations


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class DrillScenariosChanged:
    """A new version of the drill scenarios (the scenarios aggregate's event)."""

    scenarios: tuple[DrillScenario, ...]


@dataclass(frozen=True)
class DrillScheduled:
    """A drill of a scenario (its copy at scheduling) was scheduled at `due_at`."""

    drill_id: str
    scenario: DrillScenario
    due_at: datetime
    recurrence: Recurrence
    scenarios_version: int = 0


@dataclass(frozen=True)
class DrillRunStarted:
    """A run declared its drill incident; `next_due_at` is the next run (None: no more)."""

    run: int
    incident_id: str
    due_at: datetime
    next_due_at: datetime | None = None


@dataclass(frozen=True)
class DrillRunFailed:
    """A run could not declare its incident (e.g. its type left the matrix)."""

    run: int
    due_at: datetime
    reason: str
    next_due_at: datetime | None = None


@dataclass(frozen=True)
class DrillFigureRecorded:
    """A figure measured outside the platform (reputation recovery) for one run's incident."""

    incident_id: str
    kind: TargetKind
    value: float


@dataclass(frozen=True)
class DrillCancelled:
    """The drill was cancelled: no further runs."""

    reason: str


DrillEvent = (
    DrillScheduled | DrillRunStarted | DrillRunFailed | DrillFigureRecorded | DrillCancelled
)


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class DrillRun:
    """One run of a drill: its incident (empty when the declaration failed)."""

    run: int
    due_at: datetime
    incident_id: str = ""
    error: str = ""


@dataclass(frozen=True)
class Drill:
    """The drill aggregate's state."""

    drill_id: str
    exists: bool = False
    scenario: DrillScenario | None = None
    recurrence: Recurrence = Recurrence.ONCE
    next_due_at: datetime | None = None
    anchor_at: datetime | None = None  # the first run's time: recurrences count from it
    status: DrillStatus = DrillStatus.SCHEDULED
    runs: tuple[DrillRun, ...] = ()
    figures: Mapping[str, Mapping[TargetKind, float]] = field(default_factory=dict)
    cancel_reason: str = ""

    def run_id(self, run: int) -> str:
        """Returns the id of run `run`'s incident (derived, so a retried run declares it once)."""
        return f"{self.drill_id}-r{run}"


def initial_drill(drill_id: str) -> Drill:
    return Drill(drill_id)


def evolve_drill(state: Drill, event: DrillEvent, at: datetime) -> Drill:
    """Returns the drill after one event."""
    match event:
        case DrillScheduled():
            return replace(
                state,
                exists=True,
                scenario=event.scenario,
                recurrence=event.recurrence,
                next_due_at=event.due_at,
                anchor_at=event.due_at,
                status=DrillStatus.SCHEDULED,
            )
        case DrillRunStarted() | DrillRunFailed():
            run = (
                DrillRun(event.run, event.due_at, incident_id=event.incident_id)
                if isinstance(event, DrillRunStarted)
                else DrillRun(event.run, event.due_at, error=event.reason)
            )
            status = DrillStatus.SCHEDULED if event.next_due_at else DrillStatus.DONE
            return replace(
                state, runs=(*state.runs, run), next_due_at=event.next_due_at, status=status
            )
        case DrillFigureRecorded():
            current = dict(state.figures.get(event.incident_id, {}))
            current[event.kind] = event.value
            return replace(state, figures={**state.figures, event.incident_id: current})
        case DrillCancelled():
            return replace(
                state, status=DrillStatus.CANCELLED, next_due_at=None, cancel_reason=event.reason
            )
    return state


def evolve_scenarios(
    state: Mapping[str, DrillScenario], event: DrillScenariosChanged, at: datetime
) -> Mapping[str, DrillScenario]:
    return {s.scenario_id: s for s in event.scenarios}


# ----------------------------------------------------------------------------- decisions


def add_months(at: datetime, months: int) -> datetime:
    """Returns `at` moved by whole calendar months (the day clamped to the month's last)."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def next_due(due_at: datetime, recurrence: Recurrence, now: datetime) -> datetime | None:
    """Returns the first occurrence after `due_at` that is later than `now` (None: once).
    Occurrences missed while nothing ran (the service was down) are skipped, not run in a
    burst."""
    months = MONTHS.get(recurrence)
    if months is None:
        return None
    step = 1
    following = add_months(due_at, months)
    while following <= now:
        step += 1
        following = add_months(due_at, months * step)
    return following


def decide_scenarios(
    current: Mapping[str, DrillScenario], scenarios: Sequence[DrillScenario]
) -> list[DrillScenariosChanged]:
    """Returns the event of a new scenarios version; nothing when unchanged."""
    require(validate_scenarios(scenarios))
    if {s.scenario_id: s for s in scenarios} == dict(current):
        return []
    return [DrillScenariosChanged(tuple(scenarios))]


def decide_schedule(
    state: Drill,
    scenario: DrillScenario | None,
    scenario_id: str,
    due_at: datetime | None,
    recurrence: Recurrence | None,
    known_types: frozenset[str],
    *,
    scenarios_version: int,
    now: datetime,
) -> list[DrillEvent]:
    """Schedules a drill of a known scenario at `due_at` (not in the past)."""
    violations: list[tuple[str, str]] = []
    if scenario is None:
        violations.append(("scenario_id", f"unknown drill scenario {scenario_id!r}"))
    elif scenario.incident_type not in known_types:
        violations.append(
            ("scenario_id", f"incident type {scenario.incident_type!r} is not in the matrix")
        )
    if due_at is None:
        violations.append(("at", "must be set"))
    elif due_at < now:
        violations.append(("at", "must not be in the past"))
    require(violations)
    if state.exists:
        raise IllegalTransition(f"drill {state.drill_id} already exists")
    assert scenario is not None and due_at is not None
    return [
        DrillScheduled(
            state.drill_id, scenario, due_at, recurrence or Recurrence.ONCE, scenarios_version
        )
    ]


def decide_cancel(state: Drill, reason: str) -> list[DrillEvent]:
    """Cancels a scheduled drill; nothing when it already is cancelled."""
    if len(reason) > MAX_TITLE:
        require([("reason", f"must be at most {MAX_TITLE} characters")])
    if not state.exists:
        raise NotFound(f"drill {state.drill_id} does not exist")
    if state.status is DrillStatus.CANCELLED:
        return []
    if state.status is DrillStatus.DONE:
        raise IllegalTransition(f"drill {state.drill_id} has run and is done")
    return [DrillCancelled(reason)]


def due_run(state: Drill, now: datetime) -> int | None:
    """Returns the number of the run due at `now` (None: nothing due, cancelled or done)."""
    if state.status is not DrillStatus.SCHEDULED or state.next_due_at is None:
        return None
    if state.next_due_at > now:
        return None
    return len(state.runs)


def decide_run(
    state: Drill, run: int, now: datetime, *, declared: bool, error: str = ""
) -> list[DrillEvent]:
    """Records run `run` (started when its incident was declared, else failed); nothing when
    that run is already recorded."""
    if run != len(state.runs) or state.next_due_at is None:
        return []
    # From the first run's time, so 31 March runs monthly on the last day, not drifting to 28th.
    anchor = state.anchor_at or state.next_due_at
    following = next_due(anchor, state.recurrence, max(now, state.next_due_at))
    if declared:
        return [DrillRunStarted(run, state.run_id(run), state.next_due_at, following)]
    return [DrillRunFailed(run, state.next_due_at, error[:MAX_TITLE], following)]


def decide_figure(
    state: Drill, incident_id: str, kind: TargetKind | None, value: float
) -> list[DrillEvent]:
    """Records a measured figure for one run's incident (the latest run when empty)."""
    if not state.exists:
        raise NotFound(f"drill {state.drill_id} does not exist")
    violations: list[tuple[str, str]] = []
    if kind not in RECORDED:
        names = ", ".join(sorted(k.value for k in RECORDED))
        violations.append(("kind", f"only {names} is recorded by hand"))
    if not math.isfinite(value) or not 0 <= value <= 1:
        violations.append(("value", "a share between 0 and 1"))
    require(violations)
    assert kind is not None
    run = run_of(state, incident_id)
    if state.figures.get(run.incident_id, {}).get(kind) == value:
        return []
    return [DrillFigureRecorded(run.incident_id, kind, value)]


def run_of(state: Drill, incident_id: str = "") -> DrillRun:
    """Returns the run with that incident, or the latest run that declared one."""
    started = [run for run in state.runs if run.incident_id]
    for run in reversed(started):
        if not incident_id or run.incident_id == incident_id:
            return run
    what = f"incident {incident_id}" if incident_id else "a run yet"
    raise NotFound(f"drill {state.drill_id} has no {what}")


# ----------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class TeamResponse:
    """A paged team's first acknowledgement in a drill incident (None: not yet)."""

    team_id: str
    acknowledged_at: datetime | None
    minutes: float | None


@dataclass(frozen=True)
class TargetResult:
    """One target of a run: its bar, the achieved figure (None: not measurable yet), outcome."""

    kind: TargetKind
    target: float
    fraction: float
    bar: float
    unit: str
    achieved: float | None
    outcome: Outcome
    note: str = ""


@dataclass(frozen=True)
class DrillReport:
    """A run's report against the scenario's targets."""

    drill_id: str
    scenario_id: str
    incident_id: str
    run: int
    declared_at: datetime | None
    resolved_at: datetime | None
    teams: tuple[TeamResponse, ...]
    targets: tuple[TargetResult, ...]

    @property
    def met(self) -> bool:
        return all(t.outcome is Outcome.MET for t in self.targets)


def _minutes(since: datetime, until: datetime) -> float:
    return round((until - since).total_seconds() / 60, 3)


def team_responses(incident: Incident) -> tuple[TeamResponse, ...]:
    """Returns each paged team's first acknowledgement, in the order the teams were engaged."""
    result = []
    for team_id, engagement in incident.teams.items():
        if not engagement.paged:
            continue
        acks = [
            p.acknowledged_at
            for p in incident.pages.values()
            if p.team_id == team_id and p.acknowledged_at is not None
        ]
        first = min(acks) if acks else None
        minutes = _minutes(incident.declared_at, first) if first and incident.declared_at else None
        result.append(TeamResponse(team_id, first, minutes))
    return tuple(result)


def _judge(target: DrillTarget, achieved: float | None, elapsed: float) -> Outcome:
    """Returns the outcome: a time already past its bar is missed before it is measured."""
    if achieved is None:
        if target.kind not in AT_LEAST and elapsed > target.bar:
            return Outcome.MISSED
        return Outcome.PENDING
    if target.kind in AT_LEAST:
        return Outcome.MET if achieved >= target.bar else Outcome.MISSED
    return Outcome.MET if achieved <= target.bar else Outcome.MISSED


def report(drill: Drill, incident: Incident, run: DrillRun, now: datetime) -> DrillReport:
    """Returns the report of one run from its incident's state (events) at `now`."""
    assert drill.scenario is not None
    teams = team_responses(incident)
    declared = incident.declared_at
    elapsed = _minutes(declared, now) if declared else 0.0
    figures = drill.figures.get(run.incident_id, {})
    results = []
    for target in drill.scenario.targets:
        assert target.kind is not None
        achieved: float | None = None
        note = ""
        if target.kind is TargetKind.RECOVERY:
            if declared and incident.resolved_at:
                achieved = _minutes(declared, incident.resolved_at)
            else:
                note = "not resolved yet"
        elif target.kind is TargetKind.JOINT_RESPONSE:
            waiting = [t.team_id for t in teams if t.minutes is None]
            if teams and not waiting:
                achieved = max(t.minutes or 0.0 for t in teams)
            else:
                note = "waiting for " + ", ".join(waiting) if waiting else "no team was paged"
        else:
            achieved = figures.get(target.kind)
            if achieved is None:
                note = "record it with RecordDrillFigure"
        outcome = _judge(target, achieved, elapsed)
        results.append(
            TargetResult(
                target.kind,
                target.target,
                target.fraction,
                target.bar,
                UNITS[target.kind],
                achieved,
                outcome,
                note,
            )
        )
    return DrillReport(
        drill.drill_id,
        drill.scenario.scenario_id,
        run.incident_id,
        run.run,
        declared,
        incident.resolved_at,
        teams,
        tuple(results),
    )
