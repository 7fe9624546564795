"""SLA policy and business calendars: targets, business time, holidays, DST, validation."""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml

import careops_sla as sla

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
DEFAULT_YAML = Path(sla.__file__).parent / "sla_default.yaml"
STEP = timedelta(minutes=15)


def policy_data() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def office(**changes: Any) -> sla.BusinessCalendar:
    """The default office calendar (Shanghai, Mon-Fri 09:00-18:00, CN holidays), adjusted."""
    data: dict[str, Any] = {
        "timezone": "Asia/Shanghai",
        "holiday_country": "CN",
        **{day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    }
    data.update(changes)
    return sla.parse_calendar("office", data)


def local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


# ----------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("channel", "first_response"),
    [
        ("phone", timedelta(seconds=20)),
        ("chat", timedelta(minutes=30)),
        ("email", timedelta(hours=4)),
        ("social", timedelta(minutes=15)),
        ("app", timedelta(minutes=30)),
        ("web", timedelta(hours=4)),
        ("store", timedelta(minutes=15)),
    ],
)
def test_default_first_response_per_channel(channel: str, first_response: timedelta) -> None:
    targets = sla.default_policy().targets_for(channel=channel, priority="normal", tier="regular")
    assert targets == sla.SlaTargets(first_response, timedelta(hours=24))


def test_default_policy_version_warn_ratio_and_resolution() -> None:
    policy = sla.default_policy()
    assert policy.version == "default-2026.1"
    assert policy.warn_ratio == 0.8
    resolution = {
        priority: policy.targets_for(channel="chat", priority=priority, tier="regular").resolution
        for priority in sla.PRIORITIES
    }
    assert resolution == {
        "urgent": timedelta(hours=4),
        "high": timedelta(hours=8),
        "normal": timedelta(hours=24),
        "low": timedelta(hours=72),
    }


def test_default_calendars_per_channel() -> None:
    policy = sla.default_policy()
    for channel in ("phone", "chat", "social", "app"):
        assert policy.calendar_for(channel=channel).is_always_open(), channel
    for channel in ("email", "web", "store"):
        calendar = policy.calendar_for(channel=channel)
        assert not calendar.is_always_open(), channel
        assert (calendar.name, calendar.timezone, calendar.holiday_country) == (
            "office",
            "Asia/Shanghai",
            "CN",
        )
        assert calendar.hours == {
            **{day: ((9 * 60, 18 * 60),) for day in range(5)},
            5: (),
            6: (),
        }


def test_priority_and_tier_factors_multiply() -> None:
    policy = sla.default_policy()
    urgent_vip = policy.targets_for(channel="email", priority="urgent", tier="high_value")
    assert urgent_vip.first_response == timedelta(hours=4) * 0.25 * 0.5
    assert urgent_vip.resolution == timedelta(hours=4) * 0.5
    low_potential = policy.targets_for(channel="chat", priority="low", tier="potential")
    assert low_potential == sla.SlaTargets(timedelta(minutes=45), timedelta(hours=54))
    high_dormant = policy.targets_for(channel="phone", priority="high", tier="low_frequency")
    assert high_dormant == sla.SlaTargets(timedelta(seconds=10), timedelta(hours=8))


def test_most_specific_override_wins_per_target() -> None:
    data = policy_data()
    data["overrides"] = [
        {"channel": "email", "priority": "urgent", "tier": "high_value", "first_response": "20m"},
        {"channel": "email", "priority": "urgent", "first_response": "40m", "resolution": "3h"},
        {"channel": "email", "first_response": "2h"},
        {"resolution": "30h"},
    ]
    policy = sla.parse_policy(data)
    cell = policy.targets_for(channel="email", priority="urgent", tier="high_value")
    # The cell sets only first_response; resolution comes from the channel x priority row.
    assert cell == sla.SlaTargets(timedelta(minutes=20), timedelta(hours=3))
    row = policy.targets_for(channel="email", priority="urgent", tier="regular")
    assert row == sla.SlaTargets(timedelta(minutes=40), timedelta(hours=3))
    column = policy.targets_for(channel="email", priority="low", tier="high_value")
    assert column == sla.SlaTargets(timedelta(hours=2), timedelta(hours=30))
    untouched = policy.targets_for(channel="chat", priority="normal", tier="regular")
    assert untouched == sla.SlaTargets(timedelta(minutes=30), timedelta(hours=30))


def test_later_override_wins_a_tie() -> None:
    data = policy_data()
    data["overrides"] = [
        {"channel": "web", "first_response": "1h"},
        {"channel": "web", "first_response": "1h30m"},
    ]
    targets = sla.parse_policy(data).targets_for(channel="web", priority="high", tier="regular")
    assert targets.first_response == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("cell", "word"),
    [
        ({"channel": "fax", "priority": "normal", "tier": "regular"}, "channel"),
        ({"channel": "email", "priority": "asap", "tier": "regular"}, "priority"),
        ({"channel": "email", "priority": "normal", "tier": "vip"}, "tier"),
    ],
)
def test_unknown_grid_value_is_a_policy_error(cell: dict[str, str], word: str) -> None:
    with pytest.raises(sla.PolicyError, match=f"unknown {word}"):
        sla.default_policy().targets_for(**cell)


def test_unknown_channel_has_no_calendar() -> None:
    with pytest.raises(sla.PolicyError, match="unknown channel 'fax'"):
        sla.default_policy().calendar_for(channel="fax")


# ----------------------------------------------------------------------------- calendars


def test_email_opened_friday_evening_is_due_monday_noon() -> None:
    calendar = sla.default_policy().calendar_for(channel="email")
    start = local(SHANGHAI, 2026, 3, 6, 17, 0)  # a Friday
    due = calendar.add_business_time(start, timedelta(hours=4))
    assert due == local(SHANGHAI, 2026, 3, 9, 12, 0)
    assert due.tzinfo == UTC
    assert calendar.business_time_between(start, due) == timedelta(hours=4)


@pytest.mark.parametrize(
    ("start", "due"),
    [
        ((2026, 3, 7, 23, 0), (2026, 3, 9, 9, 30)),  # Saturday night -> Monday
        ((2026, 3, 9, 7, 0), (2026, 3, 9, 9, 30)),  # before opening
        ((2026, 3, 9, 19, 0), (2026, 3, 10, 9, 30)),  # after closing
        ((2026, 3, 9, 17, 45), (2026, 3, 10, 9, 15)),  # straddles the night
        ((2026, 3, 9, 17, 30), (2026, 3, 9, 18, 0)),  # ends exactly at closing
    ],
)
def test_clock_outside_hours_starts_at_next_opening(
    start: tuple[int, ...], due: tuple[int, ...]
) -> None:
    calendar = office()
    got = calendar.add_business_time(local(SHANGHAI, *start), timedelta(minutes=30))
    assert got == local(SHANGHAI, *due)


def test_national_day_golden_week_is_skipped() -> None:
    calendar = office()
    national_day = local(SHANGHAI, 2026, 10, 1, 10, 0)
    assert calendar.business_time_between(national_day, national_day + timedelta(hours=5)) == (
        timedelta(0)
    )
    # Wednesday 30 Sep 17:00 + 2h: 1h that evening, then 1-7 Oct are all closed.
    due = calendar.add_business_time(local(SHANGHAI, 2026, 9, 30, 17, 0), timedelta(hours=2))
    assert due == local(SHANGHAI, 2026, 10, 8, 10, 0)
    week = calendar.business_time_between(
        local(SHANGHAI, 2026, 9, 28, 0, 0), local(SHANGHAI, 2026, 10, 12, 0, 0)
    )
    assert week == timedelta(hours=9 * 5)  # 28-30 Sep and 8-9 Oct


def test_extra_holidays_are_closed() -> None:
    calendar = office(extra_holidays=["2026-03-10", date(2026, 3, 11)])
    due = calendar.add_business_time(local(SHANGHAI, 2026, 3, 9, 17, 0), timedelta(hours=2))
    assert due == local(SHANGHAI, 2026, 3, 12, 10, 0)


def test_lunch_break_is_not_business_time() -> None:
    calendar = office(mon=["13:00-18:00", "09:00-12:00"])
    due = calendar.add_business_time(local(SHANGHAI, 2026, 3, 9, 11, 0), timedelta(hours=2))
    assert due == local(SHANGHAI, 2026, 3, 9, 14, 0)
    during_lunch = calendar.add_business_time(
        local(SHANGHAI, 2026, 3, 9, 12, 30), timedelta(hours=1)
    )
    assert during_lunch == local(SHANGHAI, 2026, 3, 9, 14, 0)
    assert calendar.business_time_between(
        local(SHANGHAI, 2026, 3, 9, 0, 0), local(SHANGHAI, 2026, 3, 10, 0, 0)
    ) == timedelta(hours=8)


def new_york() -> sla.BusinessCalendar:
    return sla.parse_calendar(
        "ny",
        {
            "timezone": "America/New_York",
            **{day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        },
    )


@pytest.mark.parametrize(
    ("start", "due_utc"),
    [
        # Friday 16:00 EST + 2h -> Monday 10:00 EDT (spring forward on Sunday 8 March).
        ((2026, 3, 6, 16, 0), datetime(2026, 3, 9, 14, 0, tzinfo=UTC)),
        # Friday 16:00 EDT + 2h -> Monday 10:00 EST (fall back on Sunday 1 November).
        ((2026, 10, 30, 16, 0), datetime(2026, 11, 2, 15, 0, tzinfo=UTC)),
    ],
)
def test_dst_change_keeps_local_opening_hours(start: tuple[int, ...], due_utc: datetime) -> None:
    calendar = new_york()
    begin = local(NEW_YORK, *start)
    due = calendar.add_business_time(begin, timedelta(hours=2))
    assert due == due_utc
    assert due.astimezone(NEW_YORK).hour == 10
    assert calendar.business_time_between(begin, due) == timedelta(hours=2)


@pytest.mark.parametrize(
    ("day", "ranges", "expected"),
    [
        (date(2026, 3, 8), ["00:00-24:00"], timedelta(hours=23)),
        (date(2026, 11, 1), ["00:00-24:00"], timedelta(hours=25)),
        (date(2026, 3, 8), ["02:00-03:00"], timedelta(0)),  # never exists on that day
        (date(2026, 3, 8), ["02:30-04:00"], timedelta(hours=1)),  # opens at 03:00 EDT
        (date(2026, 3, 8), ["01:00-02:30"], timedelta(hours=1)),  # closes at 03:00 EDT
    ],
)
def test_dst_day_counts_real_elapsed_time(
    day: date, ranges: list[str], expected: timedelta
) -> None:
    calendar = sla.parse_calendar("ny", {"timezone": "America/New_York", "sun": ranges})
    midnight = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    next_midnight = midnight.replace(day=day.day + 1)
    assert calendar.business_time_between(midnight, next_midnight) == expected


def test_always_open_calendar_never_walks_days(monkeypatch: pytest.MonkeyPatch) -> None:
    calendar = sla.default_policy().calendar_for(channel="phone")
    assert calendar.is_always_open()

    def walked(*_: object) -> None:
        raise AssertionError("an always-open calendar must not iterate over days")

    monkeypatch.setattr(sla.BusinessCalendar, "_spans", walked)
    start = local(SHANGHAI, 2026, 1, 1, 8, 0)
    due = calendar.add_business_time(start, timedelta(days=3000, seconds=1))
    assert due == start + timedelta(days=3000, seconds=1)
    assert due.tzinfo == UTC
    assert calendar.business_time_between(start, due) == timedelta(days=3000, seconds=1)


def test_a_24x7_calendar_with_holidays_is_not_always_open() -> None:
    calendar = sla.parse_calendar("x", {"always_open": True, "extra_holidays": ["2026-05-05"]})
    assert not calendar.is_always_open()
    start = datetime(2026, 5, 4, 23, 0, tzinfo=UTC)
    assert calendar.add_business_time(start, timedelta(hours=2)) == datetime(
        2026, 5, 6, 1, 0, tzinfo=UTC
    )


def test_adjacent_ranges_merge_and_make_an_always_open_week() -> None:
    halves = ((0, 720), (720, 1440))
    calendar = sla.BusinessCalendar("split", "UTC", {day: halves for day in range(7)})
    assert calendar.hours[0] == ((0, 1440),)
    assert calendar.is_always_open()


def test_long_amounts_walk_days_quickly() -> None:
    calendar = sla.parse_calendar(
        "utc",
        {"timezone": "UTC", **{d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}},
    )
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
    weeks = 400
    due = calendar.add_business_time(start, timedelta(hours=40 * weeks))
    # Ends at Friday closing of the 400th week (the earliest instant, not Monday's opening).
    assert due == start + timedelta(weeks=weeks - 1, days=4, hours=8)
    assert calendar.business_time_between(start, due + timedelta(days=2)) == timedelta(
        hours=40 * weeks
    )


def test_holiday_objects_are_built_once_per_country_and_year(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[tuple[str, object]] = []
    real = holidays.country_holidays

    def counting(country: str, *args: Any, **kwargs: Any) -> holidays.HolidayBase:
        if "years" in kwargs:
            built.append((country, kwargs["years"]))
        return real(country, *args, **kwargs)

    monkeypatch.setattr(sla.holidays, "country_holidays", counting)
    sla._holidays_for.cache_clear()
    start = local(SHANGHAI, 2026, 1, 5, 9, 0)
    for calendar in (office(), office()):  # a second calendar reuses the cached objects
        due = calendar.add_business_time(start, timedelta(hours=9 * 300))
        assert calendar.business_time_between(start, due) == timedelta(hours=9 * 300)
    assert sorted(built) == [("CN", 2026), ("CN", 2027)]


def test_naive_datetimes_and_negative_amounts_are_rejected() -> None:
    calendar = office()
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add_business_time(datetime(2026, 3, 9, 10, 0), timedelta(hours=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.business_time_between(
            local(SHANGHAI, 2026, 3, 9, 10, 0), datetime(2026, 3, 9, 12, 0)
        )
    with pytest.raises(ValueError, match="negative"):
        calendar.add_business_time(local(SHANGHAI, 2026, 3, 9, 10, 0), timedelta(hours=-1))


def test_zero_amount_and_reversed_interval() -> None:
    calendar = office()
    saturday = local(SHANGHAI, 2026, 3, 7, 10, 0)
    same = calendar.add_business_time(saturday, timedelta(0))
    assert same == saturday
    assert same.tzinfo == UTC
    monday = local(SHANGHAI, 2026, 3, 9, 10, 0)
    assert calendar.business_time_between(monday, monday - timedelta(hours=1)) == timedelta(0)


# ----------------------------------------------------------------------------- properties


def oracle(
    zone: ZoneInfo, week: dict[int, list[tuple[int, int]]], closed: set[date]
) -> Callable[[datetime], bool]:
    """Is-open predicate from local wall time, independent of the module's arithmetic."""

    def is_open(instant: datetime) -> bool:
        wall = instant.astimezone(zone)
        if wall.date() in closed:
            return False
        minute = wall.hour * 60 + wall.minute
        return any(start <= minute < end for start, end in week.get(wall.weekday(), []))

    return is_open


ORACLE_CASES = [
    (  # New York around both 2026 DST changes and US holidays, Sunday hours in the DST gap
        sla.parse_calendar(
            "ny",
            {
                "timezone": "America/New_York",
                "holiday_country": "US",
                **{d: ["09:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                "sat": ["10:00-14:00"],
                "sun": ["02:30-04:00", "20:00-24:00"],
            },
        ),
        NEW_YORK,
        {
            **{d: [(540, 720), (780, 1020)] for d in range(5)},
            5: [(600, 840)],
            6: [(150, 240), (1200, 1440)],
        },
        set(holidays.country_holidays("US", years=2026)),
        [datetime(2026, 2, 26, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC)],
    ),
    (  # Shanghai office with a lunch break around Spring Festival and Golden Week
        office(**{d: ["09:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}),
        SHANGHAI,
        {d: [(540, 720), (780, 1080)] for d in range(5)},
        set(holidays.country_holidays("CN", years=2026)),
        [datetime(2026, 2, 10, tzinfo=UTC), datetime(2026, 9, 24, tzinfo=UTC)],
    ),
]


@pytest.mark.parametrize(("calendar", "zone", "week", "closed", "windows"), ORACLE_CASES)
def test_matches_a_brute_force_oracle(
    calendar: sla.BusinessCalendar,
    zone: ZoneInfo,
    week: dict[int, list[tuple[int, int]]],
    closed: set[date],
    windows: list[datetime],
) -> None:
    is_open = oracle(zone, week, closed)
    rng = random.Random(20260308)
    for _ in range(40):
        start = rng.choice(windows) + STEP * rng.randrange(0, 4 * 24 * 18)
        amount = STEP * rng.randrange(1, 4 * 20)
        expected_due, remaining = start, amount
        while remaining:
            if is_open(expected_due):
                remaining -= STEP
            expected_due += STEP
        assert calendar.add_business_time(start, amount) == expected_due, (start, amount)
        end = start + STEP * rng.randrange(0, 4 * 24 * 5)
        steps = (end - start) // STEP
        expected = STEP * sum(is_open(start + STEP * i) for i in range(steps))
        assert calendar.business_time_between(start, end) == expected, (start, end)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", range(len(ORACLE_CASES)))
def test_add_and_between_are_inverse(seed: int, case: int) -> None:
    calendar = ORACLE_CASES[case][0]
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(150):
        start = base + timedelta(seconds=rng.randrange(0, 86400 * 365), microseconds=7)
        amount = timedelta(seconds=rng.randrange(1, 3600 * 24 * 12))
        due = calendar.add_business_time(start, amount)
        assert calendar.business_time_between(start, due) == amount, (start, amount)
        # `due` is the earliest such instant: a second earlier is not enough.
        assert calendar.business_time_between(start, due - timedelta(seconds=1)) < amount
        end = start + timedelta(seconds=rng.randrange(0, 86400 * 20))
        between = calendar.business_time_between(start, end)
        back = calendar.add_business_time(start, between)
        assert back <= end
        assert calendar.business_time_between(back, end) == timedelta(0)
        middle = start + (end - start) * rng.random()
        assert between == calendar.business_time_between(
            start, middle
        ) + calendar.business_time_between(middle, end)


# ----------------------------------------------------------------------------- validation


def changed(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Sets (or, for value ..., deletes) a dotted key of the policy data."""

    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        if value is Ellipsis:
            del node[last]
        else:
            node[last] = value

    return apply


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (changed("warn_ratio", 1.5), "warn_ratio: must be a number between 0 and 1"),
        (changed("warn_ratio", 0), "warn_ratio:"),
        (changed("warn_ratio", "high"), "warn_ratio:"),
        (changed("version", ""), "version: required"),
        (changed("version", ...), "version: required"),
        (changed("version", 2026.1), "version: required"),
        (changed("overides", []), "overides: unknown key"),
        (changed("resolution.urgent", "-4h"), "resolution.urgent: duration must be positive"),
        (changed("resolution.urgent", "0s"), "resolution.urgent: duration must be positive"),
        (changed("resolution.urgent", "soon"), "resolution.urgent: 'soon' is not a duration"),
        (changed("resolution.urgent", 4), "resolution.urgent: expected a duration"),
        (changed("resolution.urgent", ...), "resolution.urgent: missing"),
        (changed("channels.fax", {"calendar": "office", "first_response": "1h"}), "channels.fax"),
        (changed("channels.email.frist_response", "1h"), "channels.email.frist_response"),
        (changed("channels.email.calendar", "mars"), "channels.email.calendar: unknown calendar"),
        (changed("channels.phone.first_response", "-20s"), "channels.phone.first_response"),
        (changed("channels", ["phone"]), "channels: must be a mapping"),
        (changed("calendars", ["office"]), "calendars: must be a mapping"),
        (changed("calendars.office.mon", ["18:00-09:00"]), "calendars.office.mon: '18:00-09:00'"),
        (changed("calendars.office.mon", ["09:00-25:00"]), "calendars.office.mon"),
        (changed("calendars.office.mon", ["9am-6pm"]), "calendars.office.mon: '9am-6pm'"),
        (changed("calendars.office.mon", "09:00-18:00"), "calendars.office.mon: expected a list"),
        (
            changed("calendars.office.mon", ["09:00-13:00", "12:00-18:00"]),
            "calendars.office.mon: ranges 09:00-13:00 and 12:00-18:00 overlap",
        ),
        (changed("calendars.office.timezone", "Mars/Base"), "calendars.office.timezone"),
        (changed("calendars.office.timezone", ...), "calendars.office.timezone: required"),
        (changed("calendars.office.holiday_country", "XX"), "calendars.office.holiday_country"),
        (changed("calendars.office.extra_holidays", ["2026-13-01"]), "office.extra_holidays"),
        (changed("calendars.office.lunch", ["12:00-13:00"]), "calendars.office.lunch"),
        (changed("calendars.24x7.mon", ["09:00-18:00"]), "calendars.24x7.mon: cannot be"),
        (changed("tier_factors.vip", 1), "tier_factors.vip: unknown key"),
        (changed("tier_factors.regular", -1), "tier_factors.regular: must be a positive number"),
        (changed("priority_factors.low", "2x"), "priority_factors.low"),
        (
            changed("overrides", [{"channel": "fax", "first_response": "1m"}]),
            "overrides[0].channel: unknown channel 'fax'",
        ),
        (
            changed("overrides", [{"channel": "email", "teir": "regular", "first_response": "1m"}]),
            "overrides[0].teir: unknown key",
        ),
        (changed("overrides", [{"channel": "email"}]), "overrides[0]: sets neither"),
        (changed("overrides", [{"resolution": "-1h"}]), "overrides[0].resolution"),
    ],
)
def test_invalid_policies_name_the_bad_key(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = policy_data()
    change(data)
    with pytest.raises(sla.PolicyError, match=re.escape(message)):
        sla.parse_policy(data)


def test_durations_accept_units_fractions_and_compounds() -> None:
    assert sla.parse_duration("20s", "k") == timedelta(seconds=20)
    assert sla.parse_duration("1.5s", "k") == timedelta(seconds=1.5)
    assert sla.parse_duration("2d", "k") == timedelta(days=2)
    assert sla.parse_duration("1h30m", "k") == timedelta(minutes=90)
    assert sla.parse_duration(" 4 h ", "k") == timedelta(hours=4)


def test_calendar_built_directly_is_validated() -> None:
    with pytest.raises(sla.PolicyError, match="calendars.x.mon: range 18:00-09:00"):
        sla.BusinessCalendar("x", "UTC", {0: ((18 * 60, 9 * 60),)})
    with pytest.raises(sla.PolicyError, match="calendars.x: has no business hours"):
        sla.BusinessCalendar("x", "UTC", {})
    with pytest.raises(sla.PolicyError, match="calendars.x.timezone"):
        sla.BusinessCalendar("x", "Nowhere/City", {0: ((0, 60),)})


def test_policy_mappings_are_read_only() -> None:
    policy = sla.default_policy()
    with pytest.raises(TypeError):
        policy.tier_factors["regular"] = 9.0  # type: ignore[index]


def test_load_policy_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    assert sla.load_policy(None) == sla.default_policy()
    data = policy_data()
    data["version"] = "ops-7"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert sla.load_policy(str(path)).version == "ops-7"

    broken = copy.deepcopy(data)
    broken["channels"]["email"]["first_response"] = "-1h"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    with pytest.raises(sla.PolicyError, match=re.escape(f"{path}: channels.email.first_response")):
        sla.load_policy(str(path))

    path.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(sla.PolicyError, match="cannot read SLA policy"):
        sla.load_policy(str(path))
    with pytest.raises(sla.PolicyError, match="cannot read SLA policy"):
        sla.load_policy(str(tmp_path / "missing.yaml"))
