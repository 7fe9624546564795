"""Reactions carry the causing actor: `caused_by` scopes, timers remember it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

from careops_eventstore.causes import CAUSE_KEY, attributed, caused_by, current_cause, principal
from careops_eventstore.sqlstate import metadata
from careops_eventstore.timers import DueTimer, TimerScheduler, due, schedule

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_outside_a_reaction_the_actor_is_unchanged() -> None:
    assert current_cause() == ""
    assert attributed("sla-timer") == "sla-timer"


def test_within_a_reaction_the_cause_leads_and_a_chain_keeps_the_first_principal() -> None:
    with caused_by("alice"):
        assert attributed("dispatcher") == "alice via dispatcher"
        # The reaction acting as the principal itself is not "alice via alice".
        assert attributed("alice") == "alice"
        with caused_by(attributed("dispatcher")):
            assert attributed("surge-detector") == "alice via surge-detector"
        assert current_cause() == "alice"
    assert current_cause() == ""
    assert principal("alice via surge-detector") == "alice"


def test_an_event_without_an_actor_causes_nothing() -> None:
    with caused_by(""):
        assert attributed("dispatcher") == "dispatcher"


async def test_a_timer_remembers_whose_event_scheduled_it_and_fires_as_them(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'timers.db'}")
    metadata.create_all(engine)
    with engine.begin() as connection:
        with caused_by("bob via dispatcher"):
            schedule(connection, DueTimer("t-1", "a-1", "sla", NOON, {"clock": "x"}))
        schedule(connection, DueTimer("t-2", "a-2", "sla", NOON, {}))
    rows = {timer.timer_id: timer.data for timer in due(engine, NOON)}
    assert rows == {"t-1": {CAUSE_KEY: "bob", "clock": "x"}, "t-2": {}}
    fired: dict[str, str] = {}

    async def fire(timer: DueTimer) -> None:
        fired[timer.timer_id] = attributed("sla-timer")

    assert await TimerScheduler(engine=engine, fire=fire, clock=lambda: NOON).tick() == 2
    assert fired == {"t-1": "bob via sla-timer", "t-2": "sla-timer"}
