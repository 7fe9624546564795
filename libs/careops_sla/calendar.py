"""Business calendars: weekly opening hours in a time zone, closed on holidays.

Pure: no clock reads. All instants returned are aware UTC datetimes; naive datetimes are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY = 24 * 60
ALL_DAY: tuple[tuple[int, int], ...] = ((0, FULL_DAY),)
# A calendar closed this many days in a row is treated as never opening again.
MAX_CLOSED_DAYS = 3 * 366
_DAY_CACHE_SIZE = 4096

Intervals = tuple[tuple[int, int], ...]
Span = tuple[datetime, datetime]


class PolicyError(ValueError):
    """An SLA policy is invalid; the message starts with the offending key."""


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
        """Validates the zone, hours and holidays and normalises the week."""
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
