"""Ticketing's configuration files: the agent directory and the compensation limits (pydantic
models, errors located).

`agents.yaml: agents[2].capacity: must be at least 1`; the entries become domain Agents.
`limits.yaml: limits.agent.CNY: ...`; the limits become domain CompensationLimits.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from careops_platform.config_files import ConfigModel, EmptyDict, EmptyList, Text, load
from pydantic import Field, PlainValidator

from ticketing import domain

PACKAGE = "ticketing"
AGENTS_DEFAULT = "agents_default.yaml"
COMPENSATION_DEFAULT = "compensation_default.yaml"
ROLES = frozenset({"agent", "senior_agent", "supervisor", "admin"})
_CURRENCY = re.compile(r"[A-Z]{3}|\*")


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


def _limit(value: Any) -> Decimal:
    """Returns a limit: a non-negative amount in major units (YAML number or string)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError('must be an amount such as 2000 or "19.90"')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError('must be an amount such as 2000 or "19.90"') from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be an amount of at least 0")
    return amount


def _role_limits(value: Any) -> dict[str, Decimal]:
    """Returns one role's limits by currency (ISO 4217 code or `*`)."""
    if not isinstance(value, dict):
        raise ValueError('must map currencies (or "*") to amounts')
    bad = [key for key in value if not isinstance(key, str) or not _CURRENCY.fullmatch(key)]
    if bad:
        raise ValueError(f'{bad[0]!r} is not a currency code of 3 capital letters or "*"')
    return {key: _limit(amount) for key, amount in value.items()}


def _limits(value: Any) -> dict[str, dict[str, Decimal]]:
    """Returns the limits by role; only the roles that may grant are accepted."""
    if not isinstance(value, dict):
        raise ValueError("must map roles to their limits")
    unknown = sorted(str(role) for role in value if role not in ROLES)
    if unknown:
        raise ValueError(f"{unknown[0]} is not a role that grants ({', '.join(sorted(ROLES))})")
    return {role: _role_limits(limits) for role, limits in value.items()}


class CompensationFile(ConfigModel):
    """The compensation limits per ticket: `limits: {role: {currency or "*": amount}}`."""

    limits: Annotated[dict[str, dict[str, Decimal]], PlainValidator(_limits), EmptyDict] = {}

    def to_domain(self) -> domain.CompensationLimits:
        """Returns the domain limits."""
        return domain.CompensationLimits(self.limits)


def load_compensation_limits(path: str | None) -> domain.CompensationLimits:
    """Returns the compensation limits of YAML `path` (None: the packaged defaults)."""
    return load(CompensationFile, path, package=PACKAGE, default=COMPENSATION_DEFAULT).to_domain()
