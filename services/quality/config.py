"""Quality's configuration file: the team directory (a pydantic model, errors located).

`teams.yaml: teams.frontline: must list at least one agent id`.
"""

from __future__ import annotations

from typing import Annotated, Any

from careops_platform.config_files import ConfigModel, EmptyDict, load
from pydantic import BeforeValidator, PlainValidator

PACKAGE = "quality"
TEAMS_DEFAULT = "teams_default.yaml"


def _agent_ids(value: Any) -> tuple[str, ...]:
    """Returns a team's agent ids: a non-empty list of strings."""
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValueError("must be a list of agent ids")
    if not value:  # an empty list would filter nothing: the whole platform's KPIs
        raise ValueError("must list at least one agent id")
    return tuple(value)


def _team_mapping(value: Any) -> Any:
    """Rejects a list of teams with the file's own wording (pydantic's would say 'dict')."""
    if not isinstance(value, dict):
        raise ValueError("must map team names to lists of agent ids")
    return value


class TeamsFile(ConfigModel):
    """The team directory: `teams: {name: [agent ids]}`."""

    teams: Annotated[
        dict[str, Annotated[tuple[str, ...], PlainValidator(_agent_ids)]],
        BeforeValidator(_team_mapping),
        EmptyDict,
    ] = {}

    def to_domain(self) -> dict[str, list[str]]:
        """Returns agent ids by team name."""
        return {name: list(agents) for name, agents in self.teams.items()}


def load_teams(path: str | None) -> dict[str, list[str]]:
    """Returns the team directory YAML `path` (None: the packaged default) by team name."""
    return load(TeamsFile, path, package=PACKAGE, default=TEAMS_DEFAULT).to_domain()
