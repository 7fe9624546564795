"""The response matrix: incident type x team -> engagement (red paged and leads, grey informed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from incident.domain.values import ID_PATTERN, Engagement, Level


@dataclass(frozen=True)
class MatrixCell:
    """One team's engagement for an incident type (None: not specified)."""

    team_id: str
    engagement: Engagement | None


@dataclass(frozen=True)
class MatrixRow:
    """One incident type's teams."""

    incident_type: str
    title: str = ""
    cells: tuple[MatrixCell, ...] = ()


@dataclass(frozen=True)
class Matrix:
    """The response matrix by incident type, with its version (the stream sequence)."""

    rows: Mapping[str, MatrixRow] = field(default_factory=dict)
    version: int = 0


def validate_matrix(rows: Sequence[MatrixRow], teams: set[str]) -> list[tuple[str, str]]:
    """Returns violations: unknown teams, duplicate types, unspecified engagements."""
    violations: list[tuple[str, str]] = []
    if not rows:
        violations.append(("rows", "the matrix needs at least one incident type"))
    types = [row.incident_type for row in rows]
    if len(set(types)) != len(types):
        violations.append(("rows", "incident types must be unique"))
    for index, row in enumerate(rows):
        if not ID_PATTERN.fullmatch(row.incident_type):
            violations.append((f"rows[{index}].incident_type", "lower-case id like server_crash"))
        if not any(cell.engagement is Engagement.RED for cell in row.cells):
            violations.append((f"rows[{index}].cells", "needs a red (leading) team"))
        for c_index, cell in enumerate(row.cells):
            if cell.team_id not in teams:
                violations.append(
                    (f"rows[{index}].cells[{c_index}].team_id", f"no team {cell.team_id!r}")
                )
            if cell.engagement is None:
                violations.append((f"rows[{index}].cells[{c_index}].engagement", "unspecified"))
    return violations


def effective_engagement(engagement: Engagement, level: Level) -> tuple[Engagement, bool]:
    """Returns the engagement at a level and whether the team is paged.

    Levels A and B engage teams exactly as the matrix says (red and yellow paged, grey informed).
    Level C (one channel) pages only the red team; yellow teams are informed instead.
    """
    if engagement is Engagement.GREY:
        return engagement, False
    if level is Level.C and engagement is Engagement.YELLOW:
        return engagement, False
    return engagement, True
