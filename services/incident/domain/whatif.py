"""What-if over past incidents: replay an incident's recorded assessments under other policies.

An incident's level and teams come from three recorded decisions: its declaration (risk
factors), reassessments (new factors) and escalations by hand (one level up). `replay` runs
those decisions again through `decide`, the very code that made them, each under the risk
model and response matrix the caller gives for it (a draft, or what was in force then), and
returns the level and the teams it would have engaged. Pure: the caller reads the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from incident.domain.commands import Command, DeclareIncident, EscalateIncident, ReassessIncident
from incident.domain.decide import Context, decide
from incident.domain.errors import IncidentError, InvalidCommand
from incident.domain.events import (
    IncidentDeclared,
    IncidentEscalated,
    IncidentEvent,
    IncidentReassessed,
)
from incident.domain.incident import Incident, TeamEngagement, evolve, initial
from incident.domain.matrix import Matrix
from incident.domain.risk import RiskFactors, RiskModel
from incident.domain.values import Level


@dataclass(frozen=True)
class Assessment:
    """One recorded decision that set the level: a declaration, reassessment or escalation,
    with the risk model version and matrix version its envelope recorded."""

    at: datetime
    event: IncidentDeclared | IncidentReassessed | IncidentEscalated
    risk_version: str = ""
    matrix_version: int = 0


ASSESSMENTS = (IncidentDeclared, IncidentReassessed, IncidentEscalated)


def is_assessment(event: IncidentEvent) -> bool:
    """True for the events `replay` decides again."""
    return isinstance(event, ASSESSMENTS)


@dataclass(frozen=True)
class Outcome:
    """An incident's level, risk index and engaged teams (team -> engagement, paged)."""

    level: Level
    risk_index: float
    teams: Mapping[str, TeamEngagement] = field(default_factory=dict)
    type_in_matrix: bool = True

    @property
    def paged(self) -> tuple[str, ...]:
        """The teams paged, sorted."""
        return tuple(sorted(team for team, engaged in self.teams.items() if engaged.paged))

    @staticmethod
    def of(incident: Incident) -> Outcome:
        """Returns what an incident's recorded state says happened."""
        return Outcome(incident.level, incident.risk_index, dict(incident.teams))


Policies = tuple[RiskModel, Matrix]


def _command(incident: Incident, assessment: Assessment, declared: IncidentDeclared) -> Command:
    event = assessment.event
    if isinstance(event, IncidentDeclared):
        return DeclareIncident(
            incident_id=incident.incident_id,
            type=event.type,
            title=event.title or event.type,
            factors=event.factors or RiskFactors(),
            drill=event.drill,
            extra_teams=event.extra_teams,
            level_floor=event.level_floor,
        )
    if isinstance(event, IncidentReassessed):
        return ReassessIncident(event.factors, event.reason or "what-if")
    return EscalateIncident(event.reason or "what-if")


def replay(incident_id: str, assessments: Sequence[tuple[Assessment, Policies]]) -> Outcome | None:
    """Returns the outcome of an incident's assessments, each decided under its policies
    (None without a declaration). An escalation the replay cannot make (already level A) is
    left out; a matrix without the incident's type engages no team."""
    state = initial(incident_id)
    declared = next(
        (a.event for a, _ in assessments if isinstance(a.event, IncidentDeclared)), None
    )
    if declared is None:
        return None
    for assessment, (risk, matrix) in assessments:
        ctx = Context(now=assessment.at, risk=risk, matrix=matrix, teams={})
        command = _command(state, assessment, declared)
        try:
            events = decide(state, command, ctx)
        except InvalidCommand:
            if isinstance(command, DeclareIncident) and declared.type not in matrix.rows:
                factors = declared.factors or RiskFactors()
                index = risk.index(factors)
                return Outcome(risk.level(index), index, {}, type_in_matrix=False)
            raise
        except IncidentError:
            continue  # e.g. escalating past level A: the draft rated it higher already
        for event in events:
            state = evolve(state, event, assessment.at)
    return Outcome.of(state)


def differs(actual: Outcome, draft: Outcome) -> bool:
    """True when the draft changes the level, a team's engagement or the paged teams."""
    return (
        actual.level is not draft.level
        or dict(actual.teams) != dict(draft.teams)
        or actual.type_in_matrix != draft.type_in_matrix
    )
