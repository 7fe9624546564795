"""The SLA policy file: one pydantic model validates it, then it becomes the domain's values.

Errors are PolicyError naming the key (`channels.email.first_response: …`); `load_policy` adds
the file name. The domain modules (calendar, policy) never import this one.
"""

from __future__ import annotations

import importlib.resources
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import yaml
from careops_platform.config_files import ConfigModel, EmptyList, FieldError, validate
from pydantic import Field, PlainValidator, create_model, field_validator
from pydantic import model_validator as model_check

from careops_sla.calendar import ALL_DAY, FULL_DAY, WEEKDAYS, BusinessCalendar, Intervals
from careops_sla.calendar import PolicyError as PolicyError
from careops_sla.policy import (
    CHANNELS,
    DEFAULT_PAUSING_HOLD_REASONS,
    DEFAULT_WARN_RATIO,
    HOLD_REASONS,
    PRIORITIES,
    TICKET_TYPES,
    TIERS,
    WARN_RATIO_RULE,
    Override,
    SlaPolicy,
    is_warn_ratio,
)

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[smhd])+\s*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")


# ----------------------------------------------------------------------------- values


def _duration(value: Any) -> timedelta:
    """Returns a positive duration like "20s", "30m", "4h", "2d", "1.5s" or "1h30m"."""
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 20s, 30m, 4h or 2d, got {value!r}")
    text = value.strip().lower()
    negative = text.startswith("-")
    body = text.lstrip("+-")
    if not body or not _DURATION.fullmatch(body):
        raise ValueError(f"{value!r} is not a duration like 20s, 30m, 4h, 2d or 1h30m")
    seconds = sum(
        float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(body)
    )
    if negative or seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError as exc:
        raise ValueError(f"duration {value!r} is too large") from exc


def _optional_duration(value: Any) -> timedelta | None:
    """Returns None for a missing target, else the duration."""
    return None if value is None else _duration(value)


def _factor(value: Any) -> float:
    """Returns a positive, finite multiplier."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"must be a positive number, got {value!r}")
    return float(value)


def _warn_ratio(value: Any) -> float:
    """Returns the warning ratio (0 < ratio < 1)."""
    if not is_warn_ratio(value):
        raise ValueError(f"{WARN_RATIO_RULE}, got {value!r}")
    return float(value)


def _version(value: Any) -> str:
    """Returns the policy version: a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"required, a non-empty string (quote numbers), got {value!r}")
    return value


def _clock(text: str, item: str) -> int:
    """Returns the minute of the day of "HH:MM"."""
    match = _CLOCK_TIME.fullmatch(text.strip())
    if not match or int(match.group(2)) > 59:
        raise ValueError(f"{item!r} is not a time range like 09:00-18:00")
    return int(match.group(1)) * 60 + int(match.group(2))


def _ranges(value: Any) -> Intervals:
    """Returns ["09:00-12:00", "13:00-18:00"] as minute ranges; None or [] means closed."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError('expected a list of time ranges like ["09:00-18:00"]')
    ranges = []
    for item in value:
        if not isinstance(item, str) or item.count("-") != 1:
            raise ValueError(f"{item!r} is not a time range like 09:00-18:00")
        start_text, end_text = item.split("-")
        start, end = _clock(start_text, item), _clock(end_text, item)
        if not 0 <= start < end <= FULL_DAY:
            raise ValueError(
                f"{item!r} must start before it ends, within 00:00-24:00"
                " (split overnight hours over two days)"
            )
        ranges.append((start, end))
    return tuple(ranges)


def _holiday(value: Any) -> date:
    """Returns an ISO date (YAML may already have parsed it)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO date like 2026-10-01") from exc


def _checked(accepts: Callable[[Any], bool], rule: str) -> PlainValidator:
    """Returns a validator that passes values `accepts` and otherwise says `rule`."""

    def check(value: Any) -> Any:
        """Returns `value` when it passes; raises the rule otherwise."""
        if not accepts(value):
            raise ValueError(rule)
        return value

    return PlainValidator(check)


def _text_or_none(value: Any) -> bool:
    """True for a string or None."""
    return value is None or isinstance(value, str)


def _flag(value: Any) -> bool:
    """True for a YAML boolean (not 0/1 or "yes")."""
    return isinstance(value, bool)


def _selector(kind: str, allowed: tuple[str, ...]) -> PlainValidator:
    """Returns a validator of an override's optional channel / priority / tier."""

    def check(value: Any) -> str | None:
        """Returns `value` when it passes; raises the rule otherwise."""
        if value is not None and value not in allowed:
            raise ValueError(f"unknown {kind} {value!r}; expected one of {', '.join(allowed)}")
        return value

    return PlainValidator(check)


def _hold_reason(value: Any) -> str:
    """Returns one of ticketing's hold reasons."""
    if value not in HOLD_REASONS:
        raise ValueError(
            f"unknown hold reason {value!r}; expected one of {', '.join(HOLD_REASONS)}"
        )
    return str(value)


Duration = Annotated[timedelta, PlainValidator(_duration)]
OptionalDuration = Annotated[timedelta | None, PlainValidator(_optional_duration)]
Factor = Annotated[float, PlainValidator(_factor)]
Ranges = Annotated[Intervals, PlainValidator(_ranges)]


# ----------------------------------------------------------------------------- models


class CalendarSpec(ConfigModel):
    """One calendar: `always_open`, or a time zone with weekday hours and holidays."""

    timezone: Annotated[str | None, _checked(_text_or_none, "an IANA zone like Asia/Shanghai")] = (
        None
    )
    always_open: Annotated[bool, _checked(_flag, "must be true or false")] = False
    holiday_country: Annotated[str | None, _checked(_text_or_none, "a country code like CN")] = None
    extra_holidays: Annotated[tuple[Annotated[date, PlainValidator(_holiday)], ...], EmptyList] = ()
    mon: Ranges = ()
    tue: Ranges = ()
    wed: Ranges = ()
    thu: Ranges = ()
    fri: Ranges = ()
    sat: Ranges = ()
    sun: Ranges = ()

    @model_check(mode="after")
    def _hours_or_always_open(self) -> CalendarSpec:
        """An always-open calendar has no hours; any other needs a time zone."""
        if self.always_open:
            given = [day for day in WEEKDAYS if day in self.model_fields_set]
            if given:
                raise FieldError(given[0], "cannot be combined with always_open")
        elif self.timezone is None:
            raise FieldError("timezone", "required, an IANA zone like Asia/Shanghai")
        return self

    def to_calendar(self, name: str) -> BusinessCalendar:
        """Returns the domain calendar (which checks the zone, country and hours)."""
        if self.always_open:
            hours = {day: ALL_DAY for day in range(7)}
        else:
            hours = {index: getattr(self, day) for index, day in enumerate(WEEKDAYS)}
        return BusinessCalendar(
            name=name,
            timezone=self.timezone or "UTC",
            hours=hours,
            holiday_country=self.holiday_country or None,
            extra_holidays=frozenset(self.extra_holidays),
        )


class ChannelSpec(ConfigModel):
    """A channel's calendar and normal-priority first-response target."""

    calendar: str
    first_response: Duration


class OverrideSpec(ConfigModel):
    """Targets set directly for the cells its selectors match."""

    channel: Annotated[str | None, _selector("channel", CHANNELS)] = None
    priority: Annotated[str | None, _selector("priority", PRIORITIES)] = None
    tier: Annotated[str | None, _selector("tier", TIERS)] = None
    first_response: OptionalDuration = None
    resolution: OptionalDuration = None

    @model_check(mode="after")
    def _sets_a_target(self) -> OverrideSpec:
        """An override that sets no target would change nothing."""
        if self.first_response is None and self.resolution is None:
            raise ValueError("sets neither first_response nor resolution")
        return self

    def to_override(self) -> Override:
        """Returns the domain override."""
        return Override(**self.model_dump())


def _grid(name: str, keys: tuple[str, ...], value: Any) -> Any:
    """Returns a model with exactly `keys`, each required and of type `value`."""
    fields: dict[str, Any] = {key: (value, ...) for key in keys}
    return create_model(name, __base__=ConfigModel, **fields)


def _cells(grid: Any) -> dict[str, Any]:
    """Returns a grid model's values by key."""
    return dict(grid.model_dump())


Channels = _grid("Channels", CHANNELS, ChannelSpec)
Resolution = _grid("Resolution", PRIORITIES, Duration)
PriorityFactors = _grid("PriorityFactors", PRIORITIES, Factor)
TierFactors = _grid("TierFactors", TIERS, Factor)
# Any subset of the ticket types, each optional (a type left out keeps the priority's target).
TypeResolution = create_model(
    "TypeResolution",
    __base__=ConfigModel,
    **{name: (OptionalDuration, None) for name in TICKET_TYPES},  # type: ignore[call-overload]
)
HoldReason = Annotated[str, PlainValidator(_hold_reason)]


class PolicySpec(ConfigModel):
    """The SLA policy file (see sla_default.yaml for its documented form)."""

    version: Annotated[str, PlainValidator(_version)] = Field(None, validate_default=True)
    warn_ratio: Annotated[float, PlainValidator(_warn_ratio)] = DEFAULT_WARN_RATIO
    calendars: dict[str, CalendarSpec]
    channels: Channels  # type: ignore[valid-type]
    resolution: Resolution  # type: ignore[valid-type]
    priority_factors: PriorityFactors  # type: ignore[valid-type]
    tier_factors: TierFactors  # type: ignore[valid-type]
    overrides: Annotated[tuple[OverrideSpec, ...], EmptyList] = ()
    type_resolution: TypeResolution = Field(default_factory=TypeResolution)  # type: ignore[valid-type]
    pausing_hold_reasons: Annotated[tuple[HoldReason, ...], EmptyList] = tuple(
        sorted(DEFAULT_PAUSING_HOLD_REASONS)
    )

    @field_validator("type_resolution", mode="before")
    @classmethod
    def _empty_type_resolution(cls, value: Any) -> Any:
        """`type_resolution:` with no value (or left out) sets no type's target."""
        return {} if value is None else value

    @field_validator("calendars")
    @classmethod
    def _some_calendar(cls, value: dict[str, CalendarSpec]) -> dict[str, CalendarSpec]:
        """A policy counts business time on at least one calendar."""
        if not value:
            raise ValueError("at least one calendar is required")
        return value

    @model_check(mode="after")
    def _channels_name_calendars(self) -> PolicySpec:
        """Every channel counts on a calendar the policy defines."""
        for channel in CHANNELS:
            calendar = getattr(self.channels, channel).calendar
            if calendar not in self.calendars:
                defined = ", ".join(sorted(self.calendars))
                raise FieldError(
                    ("channels", channel, "calendar"),
                    f"unknown calendar {calendar!r} (defined: {defined})",
                )
        return self

    def to_policy(self) -> SlaPolicy:
        """Returns the domain policy."""
        channels = {channel: getattr(self.channels, channel) for channel in CHANNELS}
        return SlaPolicy(
            version=self.version,
            warn_ratio=self.warn_ratio,
            calendars={name: spec.to_calendar(name) for name, spec in self.calendars.items()},
            channel_calendar={channel: spec.calendar for channel, spec in channels.items()},
            first_response={channel: spec.first_response for channel, spec in channels.items()},
            resolution=_cells(self.resolution),
            priority_factors=_cells(self.priority_factors),
            tier_factors=_cells(self.tier_factors),
            overrides=tuple(spec.to_override() for spec in self.overrides),
            type_resolution={
                name: target
                for name, target in _cells(self.type_resolution).items()
                if target is not None
            },
            pausing_hold_reasons=frozenset(self.pausing_hold_reasons),
        )


# ----------------------------------------------------------------------------- entry points


def parse_duration(value: Any, key: str) -> timedelta:
    """Returns a positive duration like "20s", "30m", "4h", "2d", "1.5s" or "1h30m"."""
    try:
        return _duration(value)
    except ValueError as exc:
        raise PolicyError(f"{key}: {exc}") from None


def parse_calendar(name: str, data: Mapping[str, Any]) -> BusinessCalendar:
    """Returns a calendar built from its YAML structure; raises PolicyError naming any bad key."""
    key = f"calendars.{name}"
    spec = validate(CalendarSpec, data, at=("calendars", name), root=key, error=PolicyError)
    return spec.to_calendar(name)


def parse_policy(data: Mapping[str, Any]) -> SlaPolicy:
    """Returns a policy built from its YAML structure; raises PolicyError naming any bad key."""
    return validate(PolicySpec, data, root="policy", error=PolicyError).to_policy()


def parse_policy_text(text: str) -> SlaPolicy:
    """Returns the policy of a YAML document; raises PolicyError naming any bad key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy: not YAML: {exc}") from exc
    return parse_policy(data)


def default_policy() -> SlaPolicy:
    """Returns the built-in policy (package data `careops_sla/sla_default.yaml`)."""
    return parse_policy(yaml.safe_load(policy_text(None)))


def policy_text(path: str | None) -> str:
    """Returns the YAML document of a policy file, or of the default one when `path` is None
    (the document ticketing seeds its first SLA policy revision with)."""
    if path is None:
        resource = importlib.resources.files("careops_sla").joinpath("sla_default.yaml")
        return resource.read_text("utf-8")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise PolicyError(f"cannot read SLA policy {path}: {exc}") from exc


def load_policy(path: str | None) -> SlaPolicy:
    """Returns the policy in a YAML file, or the default one when `path` is None."""
    if path is None:
        return default_policy()
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read SLA policy {path}: {exc}") from exc
    try:
        return parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc
