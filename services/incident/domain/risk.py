"""The risk model: the index (weights x normalised factors), its level and response deadline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incident.domain.values import Level


@dataclass(frozen=True)
class RiskFactors:
    """The raw factors of the risk index (DOMAIN §3)."""

    users_affected: int = 0
    core_system: float = 0.0
    elapsed_minutes: float = 0.0
    average_handling_minutes: float = 0.0
    exposure: float = 0.0


@dataclass(frozen=True)
class RiskModel:
    """Weights and thresholds of the risk index; versioned so every incident records its model.

    Normalisation of each factor to 0..1:
    - scope: log10(1 + users) / log10(1 + scope_saturation_users), capped at 1 (a log scale:
      10 users matter, 100,000 users saturate);
    - business: the core-system coefficient as given (0 peripheral .. 1 core system);
    - timeliness: elapsed / average handling minutes, capped at 1;
    - exposure: sentiment / media exposure as given (the unassigned 0.1 of the source).
    """

    version: str = "risk-2026.1"
    scope_weight: float = 0.4
    business_weight: float = 0.3
    timeliness_weight: float = 0.2
    exposure_weight: float = 0.1
    level_a_threshold: float = 0.7
    level_b_threshold: float = 0.4
    scope_saturation_users: int = 100_000
    default_handling_minutes: float = 60.0
    response_minutes: Mapping[Level, int] = field(
        default_factory=lambda: {Level.A: 15, Level.B: 30, Level.C: 60}
    )

    def normalised(self, factors: RiskFactors) -> dict[str, float]:
        """Returns each factor normalised to 0..1."""
        handling = factors.average_handling_minutes or self.default_handling_minutes
        scope = math.log10(1 + factors.users_affected) / math.log10(1 + self.scope_saturation_users)
        return {
            "scope": min(1.0, scope),
            "business": factors.core_system,
            "timeliness": min(1.0, factors.elapsed_minutes / handling),
            "exposure": factors.exposure,
        }

    def index(self, factors: RiskFactors) -> float:
        """Returns the risk index: the weighted sum of the normalised factors."""
        x = self.normalised(factors)
        total = (
            self.scope_weight * x["scope"]
            + self.business_weight * x["business"]
            + self.timeliness_weight * x["timeliness"]
            + self.exposure_weight * x["exposure"]
        )
        return round(total, 4)

    def level(self, index: float) -> Level:
        """Returns the level an index reaches."""
        if index >= self.level_a_threshold:
            return Level.A
        if index >= self.level_b_threshold:
            return Level.B
        return Level.C

    def response_due(self, level: Level, since: datetime) -> datetime:
        """Returns when a response is due at `level` for an incident declared `since`."""
        return since + timedelta(minutes=self.response_minutes[level])


def validate_factors(factors: RiskFactors | None) -> list[tuple[str, str]]:
    """Returns field violations of risk factors (None means all zero)."""
    if factors is None:
        return []
    violations = []
    if factors.users_affected < 0:
        violations.append(("factors.users_affected", "must not be negative"))
    for name in ("core_system", "exposure"):
        value = getattr(factors, name)
        if not 0 <= value <= 1 or math.isnan(value):
            violations.append((f"factors.{name}", "must be between 0 and 1"))
    if factors.elapsed_minutes < 0 or math.isnan(factors.elapsed_minutes):
        violations.append(("factors.elapsed_minutes", "must not be negative"))
    if factors.average_handling_minutes < 0 or math.isnan(factors.average_handling_minutes):
        violations.append(("factors.average_handling_minutes", "must not be negative"))
    return violations
