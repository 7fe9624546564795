"""The team and response-matrix aggregates: define a team, change the matrix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from incident.domain.errors import require
from incident.domain.events import ResponseMatrixChanged, TeamDefined
from incident.domain.matrix import Matrix, MatrixRow, validate_matrix
from incident.domain.oncall import Team, validate_team


def evolve_team(state: Team | None, event: TeamDefined, at: datetime) -> Team | None:
    """Returns the team as defined by the event."""
    return event.team


def evolve_matrix(state: Matrix, event: ResponseMatrixChanged, at: datetime) -> Matrix:
    """Returns the matrix with the event's rows."""
    return Matrix({row.incident_type: row for row in event.rows}, state.version)


def decide_team(current: Team | None, team: Team) -> list[TeamDefined]:
    """Returns the event that (re)defines a team; nothing when the definition is unchanged."""
    require(validate_team(team))
    if current == team:
        return []
    return [TeamDefined(team)]


def decide_matrix(
    current: Matrix, rows: Sequence[MatrixRow], teams: set[str]
) -> list[ResponseMatrixChanged]:
    """Returns the event of a new matrix version; nothing when the rows are unchanged."""
    require(validate_matrix(rows, teams))
    if {row.incident_type: row for row in rows} == dict(current.rows):
        return []
    return [ResponseMatrixChanged(tuple(rows))]
