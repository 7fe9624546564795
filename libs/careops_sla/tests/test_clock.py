"""The shared SLA clock model: outcomes by consumed time, due times from the run history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import careops_sla as sla

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CAL = sla.parse_calendar("always", {"always_open": True})
OFFICE = sla.parse_calendar(
    "office", {"timezone": "UTC", **{day: ["09:00-18:00"] for day in ("mon", "tue", "wed")}}
)
MINUTE = timedelta(minutes=1)


def started(calendar: sla.BusinessCalendar = CAL, target: timedelta = MINUTE) -> sla.Clock:
    return sla.Clock("first_response", target).start(T0, calendar, 0.8)


def test_stop_within_the_target_is_met_and_past_it_is_breached() -> None:
    on_time = started().stop(T0 + MINUTE, CAL)
    assert on_time.met and not on_time.breached and on_time.consumed == MINUTE
    late = started().stop(T0 + MINUTE + timedelta(seconds=1), CAL)
    assert late.breached and not late.met


def test_a_paused_clock_can_be_stopped_and_time_on_hold_does_not_count() -> None:
    clock = started().pause(T0 + timedelta(seconds=10), CAL)
    assert clock.open and not clock.running
    stopped = clock.stop(T0 + timedelta(hours=1), CAL)
    assert stopped.met and stopped.consumed == timedelta(seconds=10)


def test_due_time_after_a_retarget_comes_from_the_history_in_business_time() -> None:
    # Monday 09:00 start, 8 h used by 17:00, paused until Tuesday 10:00, 1 h more by 11:00.
    clock = started(OFFICE, timedelta(hours=20))
    clock = clock.pause(T0 + timedelta(hours=8), OFFICE)
    tuesday = T0 + timedelta(days=1, hours=1)
    clock = clock.start(tuesday, OFFICE, 0.8)
    # A new target of 8.5 h was reached Monday 17:00 + 0.5 h of Tuesday business time (from
    # 10:00, when the clock restarted): the evening, the night and the hold are skipped.
    retargeted = clock.retarget(
        timedelta(hours=8, minutes=30), tuesday + timedelta(hours=1), OFFICE, 0.8
    )
    assert retargeted.due_at == tuesday + timedelta(minutes=30)
    assert retargeted.warn_at == T0 + timedelta(hours=6, minutes=48)
    assert retargeted.is_breached(tuesday + timedelta(hours=1), OFFICE)


def test_a_stopped_clock_keeps_its_outcome_under_a_new_target() -> None:
    stopped = started().stop(T0 + timedelta(seconds=50), CAL)
    assert stopped.retarget(timedelta(seconds=30), T0 + MINUTE, CAL, 0.8) == stopped


def _started_in_two_steps(
    clock: sla.Clock, at: datetime, calendar: sla.BusinessCalendar
) -> sla.Clock:
    """What `start` did before it was built in one go: running first, then its deadlines."""
    running = replace(clock, running_since=at, paused=False, met=False, stopped_at=None)
    warn_at = None if running.warned else running.reached_at(running.target * 0.8, calendar)
    return replace(running, due_at=running.reached_at(running.target, calendar), warn_at=warn_at)


def test_start_and_started_build_the_clock_the_two_steps_built() -> None:
    friday_evening = datetime(2026, 3, 6, 19, 0, tzinfo=UTC)
    for calendar in (CAL, OFFICE):
        for at in (T0, T0 + timedelta(hours=8, minutes=59), friday_evening):
            for target in (timedelta(0), MINUTE, timedelta(hours=20)):
                fresh = sla.Clock("resolution", target)
                assert sla.Clock.started("resolution", target, at, calendar, 0.8) == (
                    _started_in_two_steps(fresh, at, calendar)
                )
                assert fresh.start(at, calendar, 0.8) == _started_in_two_steps(fresh, at, calendar)
                paused = fresh.start(T0, calendar, 0.8).pause(T0 + timedelta(hours=2), calendar)
                warned = replace(paused, warned=True)
                for clock in (paused, warned, replace(paused, breached=True)):
                    later = at + timedelta(days=1)
                    assert clock.start(later, calendar, 0.8) == _started_in_two_steps(
                        clock, later, calendar
                    )
