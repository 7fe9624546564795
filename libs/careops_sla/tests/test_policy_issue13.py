"""Issue 13: `pausing_hold_reasons` and `type_resolution` in the SLA document, and a calendar with
two windows a day (lunch break) across holidays and DST changes, proved with exact instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import holidays
import pytest
import yaml

import careops_sla as sla

DEFAULT_YAML = (Path(sla.__file__).parent / "sla_default.yaml").read_text(encoding="utf-8")


def policy(**changes: object) -> sla.SlaPolicy:
    data = yaml.safe_load(DEFAULT_YAML)
    data.update(changes)
    return sla.parse_policy_text(yaml.safe_dump(data))


def test_the_defaults_keep_the_earlier_behaviour() -> None:
    default = sla.default_policy()
    assert default.pausing_hold_reasons == frozenset({"waiting_customer"})
    assert dict(default.type_resolution) == {}
    complaint = default.targets_for(
        channel="email", priority="normal", tier="regular", ticket_type="complaint"
    )
    assert complaint.resolution == timedelta(hours=24)
    # Both keys may be left out of a document.
    data = yaml.safe_load(DEFAULT_YAML)
    del data["pausing_hold_reasons"], data["type_resolution"]
    bare = sla.parse_policy_text(yaml.safe_dump(data))
    assert bare.pausing_hold_reasons == default.pausing_hold_reasons
    assert dict(bare.type_resolution) == {}


def test_a_type_resolution_replaces_the_prioritys_resolution_times_the_tier() -> None:
    typed = policy(type_resolution={"complaint": "48h"})
    targets = typed.targets_for(
        channel="email", priority="urgent", tier="high_value", ticket_type="complaint"
    )
    assert targets.resolution == timedelta(hours=24)  # 48h x 0.5 (high value)
    fault = typed.targets_for(
        channel="email", priority="urgent", tier="regular", ticket_type="fault"
    )
    assert fault.resolution == timedelta(hours=4)  # the priority's
    # An override still wins.
    overridden = policy(
        type_resolution={"complaint": "48h"},
        overrides=[{"channel": "email", "resolution": "2h"}],
    )
    cell = overridden.targets_for(
        channel="email", priority="normal", tier="regular", ticket_type="complaint"
    )
    assert cell.resolution == timedelta(hours=2)


def test_pausing_hold_reasons_are_data() -> None:
    assert policy(pausing_hold_reasons=["waiting_customer", "waiting_third_party"]).pauses(
        "waiting_third_party"
    )
    assert not policy(pausing_hold_reasons=[]).pauses("waiting_customer")


@pytest.mark.parametrize(
    ("changes", "located"),
    [
        ({"type_resolution": {"gripe": "4h"}}, "type_resolution.gripe: unknown key"),
        ({"type_resolution": {"complaint": "0h"}}, "type_resolution.complaint: duration"),
        ({"type_resolution": {"complaint": "soon"}}, "type_resolution.complaint: 'soon'"),
        ({"pausing_hold_reasons": ["lunch"]}, "pausing_hold_reasons[0]: unknown hold reason"),
        ({"pausing_hold_reasons": "waiting_customer"}, "pausing_hold_reasons: "),
    ],
)
def test_bad_values_are_located(changes: dict[str, object], located: str) -> None:
    with pytest.raises(sla.PolicyError) as error:
        policy(**changes)
    assert str(error.value).startswith(located)


# ----------------------------------------------------------------------------- calendar

BERLIN = sla.parse_calendar(
    "berlin",
    {
        "timezone": "Europe/Berlin",
        "holiday_country": "DE",
        "extra_holidays": ["2026-03-27"],  # a custom closing day (a Friday)
        **{day: ["09:00-12:00", "13:30-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    },
)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "amount", "due"),
    [
        # Monday 2 March, 11:30 CET: 30 min before lunch, 30 min after it -> 14:00 CET.
        (utc(2026, 3, 2, 10, 30), timedelta(hours=1), utc(2026, 3, 2, 13, 0)),
        # Thursday 26 March 11:00 CET: 1 h + 4.5 h that day; Friday 27 is the custom holiday;
        # the clocks go forward on Sunday 29; Monday 30 09:00 CEST + 30 min = 07:30 UTC.
        (utc(2026, 3, 26, 10, 0), timedelta(hours=6), utc(2026, 3, 30, 7, 30)),
        # Thursday 2 April 17:00 CEST: 1 h; Good Friday 3 April and Easter Monday 6 April are
        # public holidays (the holidays library); Tuesday 7 April 09:00 CEST + 1 h = 08:00 UTC.
        (utc(2026, 4, 2, 15, 0), timedelta(hours=2), utc(2026, 4, 7, 8, 0)),
        # Friday 23 October 17:00 CEST: 1 h; the clocks go back on Sunday 25; Monday 26:
        # 09:00-12:00 CET (3 h), lunch, 13:30 + 30 min = 14:00 CET = 13:00 UTC.
        (utc(2026, 10, 23, 15, 0), timedelta(hours=4, minutes=30), utc(2026, 10, 26, 13, 0)),
    ],
)
def test_two_windows_a_day_skip_lunch_holidays_and_dst(
    start: datetime, amount: timedelta, due: datetime
) -> None:
    assert BERLIN.add_business_time(start, amount) == due
    assert BERLIN.business_time_between(start, due) == amount


def test_the_holidays_are_the_librarys_and_the_custom_one() -> None:
    german = holidays.country_holidays("DE", years=2026)
    assert date(2026, 4, 3) in german and date(2026, 4, 6) in german
    assert BERLIN.is_holiday(date(2026, 4, 3)) and BERLIN.is_holiday(date(2026, 3, 27))
    assert not BERLIN.is_holiday(date(2026, 3, 26))
    # A whole open day is 7.5 business hours on either side of a DST change.
    for day in (date(2026, 3, 30), date(2026, 10, 26)):
        opens = datetime(day.year, day.month, day.day, tzinfo=UTC)
        assert BERLIN.business_time_between(opens, opens + timedelta(days=1)) == timedelta(
            hours=7, minutes=30
        )


def test_targets_are_remembered_per_cell_and_equal_a_fresh_policys() -> None:
    overridden = policy(
        type_resolution={"fault": "6h"},
        overrides=[{"channel": "email", "priority": "urgent", "first_response": "5m"}],
    )
    fresh = policy(
        type_resolution={"fault": "6h"},
        overrides=[{"channel": "email", "priority": "urgent", "first_response": "5m"}],
    )
    for channel in sla.CHANNELS:
        for priority in sla.PRIORITIES:
            for ticket_type in ("", *sla.TICKET_TYPES):
                cell = {"channel": channel, "priority": priority, "tier": "regular"}
                first = overridden.targets_for(**cell, ticket_type=ticket_type)
                assert overridden.targets_for(**cell, ticket_type=ticket_type) is first
                assert first == fresh._targets_of(channel, priority, "regular", ticket_type)
    # What it remembers is not part of the policy.
    assert overridden == fresh and repr(overridden) == repr(fresh)
    assert overridden.targets_for(channel="chat", priority="low", tier="regular", ticket_type="x")
    assert len(overridden._targets) == len(sla.CHANNELS) * len(sla.PRIORITIES) * 5
    with pytest.raises(sla.PolicyError):
        overridden.targets_for(channel="fax", priority="low", tier="regular")
