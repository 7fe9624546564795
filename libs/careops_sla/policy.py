"""SLA policy: targets per channel x priority x tier, in business time of a channel's calendar.

Pure: built from values (see `careops_sla.parsing` for the YAML form).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from careops_sla.calendar import BusinessCalendar, PolicyError

CHANNELS = ("phone", "email", "chat", "social", "app", "web", "store")
PRIORITIES = ("low", "normal", "high", "urgent")
TIERS = ("high_value", "potential", "regular", "low_frequency")
# Ticketing's ticket types and hold reasons, as a policy document names them.
TICKET_TYPES = ("consultation", "fault", "complaint", "return")
HOLD_REASONS = ("waiting_customer", "waiting_third_party", "waiting_internal")
DEFAULT_WARN_RATIO = 0.8
# Only waiting for the customer pauses the clocks: the other waits are the company's own time.
DEFAULT_PAUSING_HOLD_REASONS = frozenset({"waiting_customer"})


@dataclass(frozen=True)
class SlaTargets:
    """The first-response and resolution targets of one grid cell (business time)."""

    first_response: timedelta
    resolution: timedelta


@dataclass(frozen=True)
class Override:
    """A cell (or row, or column) of the channel x priority x tier grid set directly.

    None in a selector matches anything; a target left None keeps the computed value.
    """

    channel: str | None = None
    priority: str | None = None
    tier: str | None = None
    first_response: timedelta | None = None
    resolution: timedelta | None = None

    def matches(self, channel: str, priority: str, tier: str) -> bool:
        """True when every selector that is set equals the ticket's value."""
        return (
            self.channel in (None, channel)
            and self.priority in (None, priority)
            and self.tier in (None, tier)
        )

    @property
    def specificity(self) -> int:
        """How many selectors are set (0..3); the most specific match wins."""
        return sum(value is not None for value in (self.channel, self.priority, self.tier))


@dataclass(frozen=True)
class SlaPolicy:
    """Targets = base (first response per channel, resolution per priority) x factors.

    first_response = channels[channel] x priority_factors[priority] x tier_factors[tier];
    resolution = (type_resolution[ticket_type] if the type has one, else resolution[priority])
    x tier_factors[tier]; then `overrides` replace targets field by field: the most specific
    matching override that sets a target wins (on a tie, the later one in the list).
    `pausing_hold_reasons`: the hold reasons that pause the clocks.
    """

    version: str
    warn_ratio: float
    calendars: Mapping[str, BusinessCalendar] = field(hash=False)
    channel_calendar: Mapping[str, str] = field(hash=False)
    first_response: Mapping[str, timedelta] = field(hash=False)
    resolution: Mapping[str, timedelta] = field(hash=False)
    priority_factors: Mapping[str, float] = field(hash=False)
    tier_factors: Mapping[str, float] = field(hash=False)
    overrides: tuple[Override, ...] = ()
    type_resolution: Mapping[str, timedelta] = field(default_factory=dict, hash=False)
    pausing_hold_reasons: frozenset[str] = DEFAULT_PAUSING_HOLD_REASONS
    # targets_for's answers per grid cell: the policy is immutable, so each is computed once
    # (every OpenTicket asks). Not part of the policy: no init, repr, comparison or hash.
    _targets: dict[tuple[str, str, str, str], SlaTargets] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        """Validates the tables' keys and calendars and freezes the mappings."""
        if not isinstance(self.version, str) or not self.version.strip():
            raise PolicyError("version: required, a non-empty string")
        check_warn_ratio(self.warn_ratio)
        for name, table, keys in (
            ("channels", self.channel_calendar, CHANNELS),
            ("channels", self.first_response, CHANNELS),
            ("resolution", self.resolution, PRIORITIES),
            ("priority_factors", self.priority_factors, PRIORITIES),
            ("tier_factors", self.tier_factors, TIERS),
        ):
            if set(table) != set(keys):
                raise PolicyError(f"{name}: must have exactly {', '.join(keys)}")
        for ticket_type in self.type_resolution:
            _known("ticket type", ticket_type, TICKET_TYPES, key="type_resolution")
        for reason in self.pausing_hold_reasons:
            _known("hold reason", reason, HOLD_REASONS, key="pausing_hold_reasons")
        for channel, calendar in self.channel_calendar.items():
            if calendar not in self.calendars:
                raise PolicyError(f"channels.{channel}.calendar: unknown calendar {calendar!r}")
        set_ = object.__setattr__
        for name in (
            "calendars",
            "channel_calendar",
            "first_response",
            "resolution",
            "priority_factors",
            "tier_factors",
            "type_resolution",
        ):
            set_(self, name, MappingProxyType(dict(getattr(self, name))))
        set_(self, "overrides", tuple(self.overrides))
        set_(self, "pausing_hold_reasons", frozenset(self.pausing_hold_reasons))

    def targets_for(
        self, *, channel: str, priority: str, tier: str, ticket_type: str = ""
    ) -> SlaTargets:
        """The first-response and resolution targets (business time) of one grid cell; a
        ticket type with a `type_resolution` target replaces the priority's resolution."""
        cell = (channel, priority, tier, ticket_type)
        targets = self._targets.get(cell)
        if targets is None:
            targets = self._targets_of(channel, priority, tier, ticket_type)
            if not ticket_type or ticket_type in TICKET_TYPES:  # a bounded set of cells
                self._targets[cell] = targets
        return targets

    def _targets_of(self, channel: str, priority: str, tier: str, ticket_type: str) -> SlaTargets:
        _known("channel", channel, CHANNELS)
        _known("priority", priority, PRIORITIES)
        _known("tier", tier, TIERS)
        tier_factor = self.tier_factors[tier]
        first = self.first_response[channel] * self.priority_factors[priority] * tier_factor
        base = self.type_resolution.get(ticket_type) or self.resolution[priority]
        resolution = base * tier_factor
        matching = [o for o in self.overrides if o.matches(channel, priority, tier)]
        for override in sorted(matching, key=lambda o: o.specificity):
            if override.first_response is not None:
                first = override.first_response
            if override.resolution is not None:
                resolution = override.resolution
        return SlaTargets(first_response=first, resolution=resolution)

    def pauses(self, hold_reason: str) -> bool:
        """True when a hold for `hold_reason` pauses the clocks."""
        return hold_reason in self.pausing_hold_reasons

    def calendar_for(self, *, channel: str) -> BusinessCalendar:
        """The calendar whose business time the channel's SLA clocks count."""
        _known("channel", channel, CHANNELS)
        return self.calendars[self.channel_calendar[channel]]


def _known(kind: str, value: str, allowed: tuple[str, ...], *, key: str = "") -> None:
    """Raises PolicyError unless `value` is one of the grid's `allowed` values."""
    if value not in allowed:
        at = f"{key}: " if key else ""
        raise PolicyError(f"{at}unknown {kind} {value!r}; expected one of {', '.join(allowed)}")


WARN_RATIO_RULE = "must be a number between 0 and 1 (exclusive)"


def is_warn_ratio(value: Any) -> bool:
    """True when `value` is a number strictly between 0 and 1 (NaN and booleans are not)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value < 1


def check_warn_ratio(value: Any) -> None:
    """Raises PolicyError unless `value` is a number strictly between 0 and 1."""
    if not is_warn_ratio(value):
        raise PolicyError(f"warn_ratio: {WARN_RATIO_RULE}, got {value!r}")
