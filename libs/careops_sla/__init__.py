"""SLA policy and business calendars: targets per channel x priority x tier, in business time.

Pure module: no clock reads; YAML is read only by `load_policy` / `default_policy`.
All instants returned are aware UTC datetimes; naive datetimes are rejected.
"""

from __future__ import annotations

import importlib.resources
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml

from careops_sla.clock import Clock as Clock
from careops_sla.clock import TicketClocks as TicketClocks

CHANNELS = ("phone", "email", "chat", "social", "app", "web", "store")
PRIORITIES = ("low", "normal", "high", "urgent")
TIERS = ("high_value", "potential", "regular", "low_frequency")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY = 24 * 60
ALL_DAY: tuple[tuple[int, int], ...] = ((0, FULL_DAY),)
DEFAULT_WARN_RATIO = 0.8
# A calendar closed this many days in a row is treated as never opening again.
MAX_CLOSED_DAYS = 3 * 366
_DAY_CACHE_SIZE = 4096

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[smhd])+\s*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")

Intervals = tuple[tuple[int, int], ...]
Span = tuple[datetime, datetime]


class PolicyError(ValueError):
    """An SLA policy is invalid; the message starts with the offending key."""


# ----------------------------------------------------------------------------- calendars


@lru_cache(maxsize=256)
def _holidays_for(country: str, year: int) -> holidays.HolidayBase:
    """The `holidays` object of one country and year (cached: building it is slow)."""
    return holidays.country_holidays(country, years=year)


def _require_aware(value: datetime, name: str) -> datetime:
    """Returns `value` in UTC; a naive datetime is an error, never the host's local time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _wall_to_utc(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """First instant at or after local wall time `minute` of `day`.

    A repeated wall time (DST fall-back) is its first occurrence; a skipped one (spring-forward)
    is the transition instant, so skipped local time never counts as business time.
    """
    if minute >= FULL_DAY:
        day, minute = day + timedelta(days=1), minute - FULL_DAY
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap: fold=1 lands before the transition, fold=0 after it; bisect to the second.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = instant
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) // 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return after


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly opening hours in a time zone, closed on public and extra holidays.

    `hours` maps weekday (0=Mon..6=Sun) to sorted, non-overlapping (start, end) minutes of local
    time; it is normalised on construction (all seven days present, adjacent ranges merged).
    """

    name: str
    timezone: str
    hours: dict[int, Intervals] = field(hash=False)
    holiday_country: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    _week: tuple[Intervals, ...] = field(init=False, repr=False, compare=False, hash=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _always_open: bool = field(init=False, repr=False, compare=False, hash=False)
    _days: dict[date, tuple[Span, ...]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        key = f"calendars.{self.name}"
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise PolicyError(f"{key}.timezone: unknown time zone {self.timezone!r}") from exc
        unknown_days = set(self.hours) - set(range(7))
        if unknown_days:
            raise PolicyError(f"{key}: weekdays must be 0 (Mon) .. 6 (Sun), got {unknown_days}")
        week = tuple(
            _normalise_day(self.hours.get(day, ()), f"{key}.{WEEKDAYS[day]}") for day in range(7)
        )
        if not any(week):
            raise PolicyError(f"{key}: has no business hours")
        if self.holiday_country is not None:
            try:
                holidays.country_holidays(self.holiday_country)
            except (NotImplementedError, KeyError, TypeError) as exc:
                raise PolicyError(
                    f"{key}.holiday_country: unknown country {self.holiday_country!r}"
                    " (an ISO 3166 code known to the holidays library, e.g. CN)"
                ) from exc
        bad_dates = [d for d in self.extra_holidays if type(d) is not date]
        if bad_dates:
            raise PolicyError(f"{key}.extra_holidays: not dates: {bad_dates!r}")
        set_ = object.__setattr__
        set_(self, "hours", dict(enumerate(week)))
        set_(self, "extra_holidays", frozenset(self.extra_holidays))
        set_(self, "_week", week)
        set_(self, "_zone", zone)
        set_(
            self,
            "_always_open",
            week == (ALL_DAY,) * 7 and not self.holiday_country and not self.extra_holidays,
        )

    def is_always_open(self) -> bool:
        """True when every instant is business time (then all arithmetic is O(1))."""
        return self._always_open

    def is_holiday(self, day: date) -> bool:
        """True when the local date `day` is a public or extra holiday (closed all day)."""
        if day in self.extra_holidays:
            return True
        return bool(self.holiday_country) and day in _holidays_for(
            str(self.holiday_country), day.year
        )

    def _spans(self, day: date) -> tuple[Span, ...]:
        """The opening spans of local date `day` as UTC instants (cached per calendar)."""
        spans = self._days.get(day)
        if spans is None:
            if self.is_holiday(day):
                spans = ()
            else:
                spans = tuple(
                    (_wall_to_utc(day, start, self._zone), _wall_to_utc(day, end, self._zone))
                    for start, end in self._week[day.weekday()]
                )
                spans = tuple((opens, closes) for opens, closes in spans if closes > opens)
            if len(self._days) >= _DAY_CACHE_SIZE:
                self._days.clear()
            self._days[day] = spans
        return spans

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant (UTC) by which `amount` of business time has passed since `start`.

        A clock started outside business hours starts at the next opening. Amount 0 -> start.
        """
        begin = _require_aware(start, "start")
        if amount < timedelta(0):
            raise ValueError(f"amount must not be negative, got {amount}")
        if not amount or self._always_open:
            return begin + amount
        remaining = amount
        day = begin.astimezone(self._zone).date()
        closed_days = 0
        while True:
            spans = self._spans(day)
            for opens, closes in spans:
                if closes <= begin:
                    continue
                since = max(opens, begin)
                available = closes - since
                if remaining <= available:
                    return since + remaining
                remaining -= available
            closed_days = 0 if spans else closed_days + 1
            if closed_days > MAX_CLOSED_DAYS:
                raise ValueError(f"calendar {self.name!r} never opens after {day}")
            day += timedelta(days=1)

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The business time within [start, end); zero when end <= start."""
        begin, finish = _require_aware(start, "start"), _require_aware(end, "end")
        if finish <= begin:
            return timedelta(0)
        if self._always_open:
            return finish - begin
        total = timedelta(0)
        day = begin.astimezone(self._zone).date()
        last_day = finish.astimezone(self._zone).date()
        while day <= last_day:
            for opens, closes in self._spans(day):
                low, high = max(opens, begin), min(closes, finish)
                if high > low:
                    total += high - low
            day += timedelta(days=1)
        return total


def _normalise_day(ranges: Any, key: str) -> Intervals:
    """Validates one weekday's (start, end) minute ranges; sorts them and merges adjacent ones."""
    if not isinstance(ranges, tuple | list):
        raise PolicyError(f"{key}: expected a list of (start, end) minute ranges, got {ranges!r}")
    checked: list[tuple[int, int]] = []
    for item in ranges:
        if (
            not isinstance(item, tuple | list)
            or len(item) != 2
            or not all(type(v) is int for v in item)
        ):
            raise PolicyError(f"{key}: {item!r} is not a (start_minute, end_minute) pair")
        start, end = item
        if not 0 <= start < end <= FULL_DAY:
            raise PolicyError(
                f"{key}: range {_clock(start)}-{_clock(end)} must start before it ends,"
                " within 00:00-24:00"
            )
        checked.append((start, end))
    checked.sort()
    merged: list[tuple[int, int]] = []
    for start, end in checked:
        if merged and start < merged[-1][1]:
            previous = merged[-1]
            raise PolicyError(
                f"{key}: ranges {_clock(previous[0])}-{_clock(previous[1])} and "
                f"{_clock(start)}-{_clock(end)} overlap"
            )
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _clock(minute: int) -> str:
    """Formats a minute of the day as HH:MM for messages."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


# ----------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class SlaTargets:
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
    resolution = resolution[priority] x tier_factors[tier]; then `overrides` replace targets
    field by field: the most specific matching override that sets a target wins (on a tie, the
    later one in the list).
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

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise PolicyError("version: required, a non-empty string")
        _check_warn_ratio(self.warn_ratio)
        for name, table, keys in (
            ("channels", self.channel_calendar, CHANNELS),
            ("channels", self.first_response, CHANNELS),
            ("resolution", self.resolution, PRIORITIES),
            ("priority_factors", self.priority_factors, PRIORITIES),
            ("tier_factors", self.tier_factors, TIERS),
        ):
            if set(table) != set(keys):
                raise PolicyError(f"{name}: must have exactly {', '.join(keys)}")
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
        ):
            set_(self, name, MappingProxyType(dict(getattr(self, name))))
        set_(self, "overrides", tuple(self.overrides))

    def targets_for(self, *, channel: str, priority: str, tier: str) -> SlaTargets:
        """The first-response and resolution targets (business time) of one grid cell."""
        _known("channel", channel, CHANNELS)
        _known("priority", priority, PRIORITIES)
        _known("tier", tier, TIERS)
        tier_factor = self.tier_factors[tier]
        first = self.first_response[channel] * self.priority_factors[priority] * tier_factor
        resolution = self.resolution[priority] * tier_factor
        matching = [o for o in self.overrides if o.matches(channel, priority, tier)]
        for override in sorted(matching, key=lambda o: o.specificity):
            if override.first_response is not None:
                first = override.first_response
            if override.resolution is not None:
                resolution = override.resolution
        return SlaTargets(first_response=first, resolution=resolution)

    def calendar_for(self, *, channel: str) -> BusinessCalendar:
        """The calendar whose business time the channel's SLA clocks count."""
        _known("channel", channel, CHANNELS)
        return self.calendars[self.channel_calendar[channel]]


def _known(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise PolicyError(f"unknown {kind} {value!r}; expected one of {', '.join(allowed)}")


def _check_warn_ratio(value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < 1  # also rejects NaN
    ):
        raise PolicyError(
            f"warn_ratio: must be a number between 0 and 1 (exclusive), got {value!r}"
        )


# ----------------------------------------------------------------------------- parsing


def parse_duration(value: Any, key: str) -> timedelta:
    """Parses a positive duration like "20s", "30m", "4h", "2d", "1.5s" or "1h30m"."""
    if not isinstance(value, str):
        raise PolicyError(f"{key}: expected a duration like 20s, 30m, 4h or 2d, got {value!r}")
    text = value.strip().lower()
    negative = text.startswith("-")
    body = text.lstrip("+-")
    if not body or not _DURATION.fullmatch(body):
        raise PolicyError(f"{key}: {value!r} is not a duration like 20s, 30m, 4h, 2d or 1h30m")
    seconds = sum(
        float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(body)
    )
    if negative or seconds <= 0:
        raise PolicyError(f"{key}: duration must be positive, got {value!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError as exc:
        raise PolicyError(f"{key}: duration {value!r} is too large") from exc


def _parse_clock(text: str, key: str, item: str) -> int:
    match = _CLOCK_TIME.fullmatch(text.strip())
    if not match or int(match.group(2)) > 59:
        raise PolicyError(f"{key}: {item!r} is not a time range like 09:00-18:00")
    return int(match.group(1)) * 60 + int(match.group(2))


def _parse_ranges(value: Any, key: str) -> Intervals:
    """Parses ["09:00-12:00", "13:00-18:00"] into minute ranges; None or [] means closed."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(f'{key}: expected a list of time ranges like ["09:00-18:00"]')
    ranges = []
    for item in value:
        if not isinstance(item, str) or item.count("-") != 1:
            raise PolicyError(f"{key}: {item!r} is not a time range like 09:00-18:00")
        start_text, end_text = item.split("-")
        start, end = _parse_clock(start_text, key, item), _parse_clock(end_text, key, item)
        if not 0 <= start < end <= FULL_DAY:
            raise PolicyError(
                f"{key}: {item!r} must start before it ends, within 00:00-24:00"
                " (split overnight hours over two days)"
            )
        ranges.append((start, end))
    return tuple(ranges)


def _parse_date(value: Any, key: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise PolicyError(f"{key}: {value!r} is not an ISO date like 2026-10-01") from exc


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{key}: must be a mapping, got {type(value).__name__}")
    return value


def _only_keys(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        prefix = f"{key}." if key else ""
        raise PolicyError(
            f"{prefix}{unknown[0]}: unknown key (expected one of {', '.join(allowed)})"
        )


_CALENDAR_KEYS = ("timezone", "always_open", "holiday_country", "extra_holidays", *WEEKDAYS)


def parse_calendar(name: str, data: Mapping[str, Any]) -> BusinessCalendar:
    """Builds a calendar from its YAML structure; raises PolicyError naming any bad key."""
    key = f"calendars.{name}"
    data = _mapping(data, key)
    _only_keys(data, key, _CALENDAR_KEYS)
    always_open = data.get("always_open", False)
    if not isinstance(always_open, bool):
        raise PolicyError(f"{key}.always_open: must be true or false")
    timezone = data.get("timezone", "UTC" if always_open else None)
    if not isinstance(timezone, str):
        raise PolicyError(f"{key}.timezone: required, an IANA zone like Asia/Shanghai")
    if always_open:
        given = [day for day in WEEKDAYS if day in data]
        if given:
            raise PolicyError(f"{key}.{given[0]}: cannot be combined with always_open")
        hours = {day: ALL_DAY for day in range(7)}
    else:
        hours = {
            index: _parse_ranges(data.get(day), f"{key}.{day}")
            for index, day in enumerate(WEEKDAYS)
        }
    country = data.get("holiday_country")
    if country is not None and not isinstance(country, str):
        raise PolicyError(f"{key}.holiday_country: must be a country code like CN")
    extra = data.get("extra_holidays") or []
    if not isinstance(extra, list):
        raise PolicyError(f"{key}.extra_holidays: expected a list of ISO dates")
    return BusinessCalendar(
        name=name,
        timezone=timezone,
        hours=hours,
        holiday_country=country or None,
        extra_holidays=frozenset(_parse_date(d, f"{key}.extra_holidays") for d in extra),
    )


def _table(data: Mapping[str, Any], key: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    """A mapping that must have exactly `keys`."""
    table = _mapping(data.get(key), key)
    _only_keys(table, key, keys)
    missing = [k for k in keys if k not in table]
    if missing:
        raise PolicyError(f"{key}.{missing[0]}: missing")
    return table


def _factor(value: Any, key: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise PolicyError(f"{key}: must be a positive number, got {value!r}")
    return float(value)


_POLICY_KEYS = (
    "version",
    "warn_ratio",
    "calendars",
    "channels",
    "resolution",
    "priority_factors",
    "tier_factors",
    "overrides",
)
_OVERRIDE_KEYS = ("channel", "priority", "tier", "first_response", "resolution")


def parse_policy(data: Mapping[str, Any]) -> SlaPolicy:
    """Builds a policy from its YAML structure; raises PolicyError naming any bad key."""
    data = _mapping(data, "policy")
    _only_keys(data, "", _POLICY_KEYS)
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise PolicyError(f"version: required, a non-empty string (quote numbers), got {version!r}")
    warn_ratio = data.get("warn_ratio", DEFAULT_WARN_RATIO)
    _check_warn_ratio(warn_ratio)
    raw_calendars = _mapping(data.get("calendars"), "calendars")
    if not raw_calendars:
        raise PolicyError("calendars: at least one calendar is required")
    calendars = {str(name): parse_calendar(str(name), spec) for name, spec in raw_calendars.items()}
    channel_calendar: dict[str, str] = {}
    first_response: dict[str, timedelta] = {}
    for channel, spec in _table(data, "channels", CHANNELS).items():
        key = f"channels.{channel}"
        spec = _mapping(spec, key)
        _only_keys(spec, key, ("calendar", "first_response"))
        calendar = spec.get("calendar")
        if calendar not in calendars:
            raise PolicyError(
                f"{key}.calendar: unknown calendar {calendar!r}"
                f" (defined: {', '.join(sorted(calendars))})"
            )
        channel_calendar[channel] = str(calendar)
        first_response[channel] = parse_duration(
            spec.get("first_response"), f"{key}.first_response"
        )
    resolution = {
        priority: parse_duration(value, f"resolution.{priority}")
        for priority, value in _table(data, "resolution", PRIORITIES).items()
    }
    priority_factors = {
        priority: _factor(value, f"priority_factors.{priority}")
        for priority, value in _table(data, "priority_factors", PRIORITIES).items()
    }
    tier_factors = {
        tier: _factor(value, f"tier_factors.{tier}")
        for tier, value in _table(data, "tier_factors", TIERS).items()
    }
    raw_overrides = data.get("overrides") or []
    if not isinstance(raw_overrides, list):
        raise PolicyError("overrides: expected a list")
    overrides = tuple(_parse_override(index, spec) for index, spec in enumerate(raw_overrides))
    return SlaPolicy(
        version=version,
        warn_ratio=float(warn_ratio),
        calendars=calendars,
        channel_calendar=channel_calendar,
        first_response=first_response,
        resolution=resolution,
        priority_factors=priority_factors,
        tier_factors=tier_factors,
        overrides=overrides,
    )


def _parse_override(index: int, spec: Any) -> Override:
    key = f"overrides[{index}]"
    spec = _mapping(spec, key)
    _only_keys(spec, key, _OVERRIDE_KEYS)
    selectors: dict[str, str | None] = {}
    for name, allowed in (("channel", CHANNELS), ("priority", PRIORITIES), ("tier", TIERS)):
        value = spec.get(name)
        if value is not None and value not in allowed:
            raise PolicyError(
                f"{key}.{name}: unknown {name} {value!r}; expected one of {', '.join(allowed)}"
            )
        selectors[name] = value
    targets: dict[str, timedelta | None] = {
        name: None if spec.get(name) is None else parse_duration(spec[name], f"{key}.{name}")
        for name in ("first_response", "resolution")
    }
    if targets["first_response"] is None and targets["resolution"] is None:
        raise PolicyError(f"{key}: sets neither first_response nor resolution")
    return Override(
        channel=selectors["channel"],
        priority=selectors["priority"],
        tier=selectors["tier"],
        first_response=targets["first_response"],
        resolution=targets["resolution"],
    )


def default_policy() -> SlaPolicy:
    """The built-in policy (package data `careops_sla/sla_default.yaml`): the documents' numbers."""
    text = importlib.resources.files("careops_sla").joinpath("sla_default.yaml").read_text("utf-8")
    return parse_policy(yaml.safe_load(text))


def load_policy(path: str | None) -> SlaPolicy:
    """The policy in a YAML file, or the default one when `path` is None."""
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
