"""Quality's configuration file: the team directory (a pydantic model, errors located).

`teams.yaml: teams.frontline: must list at least one agent id`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from careops_platform.config_files import ConfigError, ConfigModel, EmptyDict, read_text, validate
from careops_platform.policies import PolicyKind
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
    """The team directory: `version:` (optional) and `teams: {name: [agent ids]}`."""

    version: str = ""
    teams: Annotated[
        dict[str, Annotated[tuple[str, ...], PlainValidator(_agent_ids)]],
        BeforeValidator(_team_mapping),
        EmptyDict,
    ] = {}


@dataclass(frozen=True)
class QualityTeams:
    """One revision of the team directory: agent ids by team name, and its version label."""

    version: str
    teams: Mapping[str, tuple[str, ...]]


def parse_teams(text: str) -> QualityTeams:
    """Returns the team directory of a YAML document; ConfigError naming the bad key.

    Without a `version:` the label is derived from the teams (the same teams, the same label).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"teams: not YAML: {exc}") from exc
    parsed = validate(TeamsFile, {} if data is None else data, root="teams", error=ConfigError)
    teams = {name: tuple(agents) for name, agents in sorted(parsed.teams.items())}
    digest = hashlib.sha256(json.dumps(teams, sort_keys=True).encode()).hexdigest()[:12]
    return QualityTeams(parsed.version or f"teams-{digest}", teams)


def teams_document(path: str | None) -> str:
    """Returns the text of the team directory file `path` (None: the packaged default),
    validated: ConfigError naming the file and the bad key."""
    text = read_text(path, package=PACKAGE, default=TEAMS_DEFAULT)
    try:
        parse_teams(text)
    except ConfigError as exc:
        raise ConfigError(f"{path or TEAMS_DEFAULT}: {exc}") from None
    return text


def load_teams(path: str | None) -> QualityTeams:
    """Returns the team directory file `path` (None: the packaged default)."""
    return parse_teams(teams_document(path))


TEAMS_KIND = PolicyKind("teams", parse_teams, lambda teams: teams.version, (ConfigError,))
