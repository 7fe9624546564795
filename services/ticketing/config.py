"""Ticketing's configuration file: the agent directory (a pydantic model, errors located).

`agents.yaml: agents[2].capacity: must be at least 1`; the entries become domain Agents.
"""

from __future__ import annotations

from typing import Annotated

from careops_platform.config_files import ConfigModel, EmptyList, Text, load
from pydantic import Field

from ticketing import domain

PACKAGE = "ticketing"
AGENTS_DEFAULT = "agents_default.yaml"


class AgentSpec(ConfigModel):
    """One agent: skills are ticket types, channels and `senior`; capacity is open tickets."""

    id: Annotated[Text, Field(min_length=1)]
    skills: Annotated[tuple[Text, ...], EmptyList] = ()
    capacity: Annotated[int, Field(ge=1)] = 10

    def to_domain(self) -> domain.Agent:
        """Returns the domain agent."""
        return domain.Agent(self.id, frozenset(self.skills), self.capacity)


class AgentsFile(ConfigModel):
    """The agent directory: `agents: [{id, skills, capacity}]`."""

    agents: Annotated[tuple[AgentSpec, ...], EmptyList] = ()

    def to_domain(self) -> list[domain.Agent]:
        """Returns the domain agents in file order."""
        return [spec.to_domain() for spec in self.agents]


def load_agents(path: str | None) -> list[domain.Agent]:
    """Returns the agents of the directory YAML `path` (None: the packaged sample)."""
    return load(AgentsFile, path, package=PACKAGE, default=AGENTS_DEFAULT).to_domain()
