"""The schedule maths: layers, restrictions, DST, overrides and swaps (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from incident import config
from incident import domain as d
from incident.domain import schedules as s

MON = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
H = timedelta(hours=1)
DAY = timedelta(days=1)


def layer(**kwargs: object) -> d.Layer:
    values: dict[str, object] = {
        "member_ids": ("a", "b", "c"),
        "rotation_type": d.RotationType.DAILY,
        "handoff_time": "09:00",
        "time_zone": "UTC",
        "start_date": "2026-01-05",
    }
    values.update(kwargs)
    return d.Layer(**values)  # type: ignore[arg-type]


def team(*layers: d.Layer, **kwargs: object) -> d.Team:
    members = tuple(d.Member(m) for m in ("a", "b", "c", "x", "y"))
    return d.Team("ops", members=members, layers=layers, **kwargs)  # type: ignore[arg-type]


def evolved(state: d.Team, event: d.TeamEvent) -> d.Team:
    after = d.evolve_team(state, event, MON)
    assert after is not None
    return after


def test_daily_weekly_and_custom_layers_hand_off_in_turn() -> None:
    daily = layer()
    assert [s.layer_on_call(daily, MON + n * DAY) for n in range(4)] == ["a", "b", "c", "a"]
    assert s.layer_on_call(daily, MON + DAY - timedelta(seconds=1)) == "a"
    assert s.layer_on_call(daily, MON - timedelta(seconds=1)) == "c"  # before the start: cycles
    weekly = layer(rotation_type=d.RotationType.WEEKLY)
    assert s.layer_on_call(weekly, MON + 6 * DAY) == "a"
    assert s.layer_on_call(weekly, MON + 7 * DAY) == "b"
    twelve = layer(rotation_type=d.RotationType.CUSTOM, shift_hours=12)
    assert [s.layer_on_call(twelve, MON + n * 12 * H) for n in range(4)] == ["a", "b", "c", "a"]
    three = layer(rotation_type=d.RotationType.CUSTOM, shift_days=3)
    assert s.layer_on_call(three, MON + 3 * DAY - H) == "a"
    assert s.layer_on_call(three, MON + 3 * DAY) == "b"


def test_the_hand_off_stays_at_local_time_across_dst() -> None:
    # Europe/Berlin leaves CET (UTC+1) for CEST (UTC+2) on 2026-03-29.
    berlin = layer(member_ids=("a", "b"), time_zone="Europe/Berlin", start_date="2026-03-27")
    before = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 09:00 CET: b's shift starts
    assert s.layer_on_call(berlin, before - timedelta(minutes=1)) == "a"
    assert s.layer_on_call(berlin, before) == "b"
    after = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert s.layer_on_call(berlin, after - timedelta(minutes=1)) == "a"
    assert s.layer_on_call(berlin, after) == "b"
    shifts = s.timeline((berlin,), before, after + DAY)
    # b's shift over the change lasts 23 hours; every hand-off is at 09:00 local time.
    assert [(x.member_id, x.ends_at - x.starts_at) for x in shifts] == [
        ("b", 23 * H),
        ("a", 24 * H),
        ("b", 24 * H),
    ]
    assert {x.starts_at.astimezone(s.ZoneInfo("Europe/Berlin")).hour for x in shifts} == {9}


def test_follow_the_sun_layers_with_restrictions_and_higher_layers_win() -> None:
    # Shanghai covers 09:00-21:00 Shanghai time, New York 09:00-21:00 New York time on weekdays,
    # a weekly base layer holds the rest.
    base = layer(member_ids=("c",), rotation_type=d.RotationType.WEEKLY, name="base")
    asia = layer(
        name="asia",
        member_ids=("a",),
        time_zone="Asia/Shanghai",
        restrictions=(d.Restriction((), "09:00", "21:00"),),
    )
    americas = layer(
        name="americas",
        member_ids=("b",),
        time_zone="America/New_York",
        restrictions=(d.Restriction((1, 2, 3, 4, 5), "09:00", "21:00"),),
    )
    layers = (base, asia, americas)
    tuesday = datetime(2026, 1, 6, tzinfo=UTC)
    assert s.on_call(layers, tuesday + 3 * H) == d.OnCall("a", d.DecidedBy.LAYER, 1, "asia")
    assert s.on_call(layers, tuesday + 14 * H) == d.OnCall("b", d.DecidedBy.LAYER, 2, "americas")
    # Asia's day is 01:00-13:00 UTC, America's weekday 14:00-02:00 UTC (it wins the overlap
    # at 01:00-02:00), the base layer holds the gap.
    day = s.timeline(layers, tuesday, tuesday + DAY)
    assert [(x.member_id, x.starts_at.hour, x.layer) for x in day] == [
        ("b", 0, 2),
        ("a", 2, 1),
        ("c", 13, 0),
        ("b", 14, 2),
    ]
    sunday = s.timeline(
        layers, datetime(2026, 1, 11, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
    )
    assert [(x.member_id, x.starts_at.hour) for x in sunday] == [("c", 0), ("a", 1), ("c", 13)]


def test_a_restriction_running_past_midnight_and_on_a_weekday_only() -> None:
    nights = layer(
        member_ids=("a",), restrictions=(d.Restriction((5,), "22:00", "06:00"),)
    )  # Friday nights
    friday = datetime(2026, 1, 9, tzinfo=UTC)
    assert s.layer_on_call(nights, friday + 23 * H) == "a"
    assert s.layer_on_call(nights, friday + DAY + 5 * H) == "a"  # Saturday 05:00
    assert s.layer_on_call(nights, friday + DAY + 6 * H) == ""
    assert s.layer_on_call(nights, friday - DAY + 23 * H) == ""  # Thursday night
    assert s.on_call((nights,), friday + 12 * H) == d.OnCall("", d.DecidedBy.NOBODY)


def test_overrides_win_over_swaps_which_win_over_layers() -> None:
    daily = layer()
    swap = d.ShiftSwap(
        "swap-1",
        "a",
        "b",
        MON,
        MON + DAY,
        return_starts_at=MON + DAY,
        return_ends_at=MON + 2 * DAY,
        status=d.SwapStatus.ACCEPTED,
    )
    override = d.Override("x", MON + 2 * H, MON + 4 * H, "ovr-1")
    assert s.on_call((daily,), MON + H, (override,), (swap,)) == d.OnCall(
        "b", d.DecidedBy.SWAP, ref="swap-1"
    )
    assert s.on_call((daily,), MON + DAY + H, (), (swap,)).member_id == "a"
    assert s.on_call((daily,), MON + 3 * H, (override,), (swap,)) == d.OnCall(
        "x", d.DecidedBy.OVERRIDE, ref="ovr-1"
    )
    requested = d.ShiftSwap("swap-2", "a", "b", MON, MON + DAY, status=d.SwapStatus.REQUESTED)
    assert s.on_call((daily,), MON + H, (), (requested,)).member_id == "a"
    later = d.Override("y", MON + 3 * H, MON + 5 * H, "ovr-2")
    assert s.on_call((daily,), MON + 3 * H, (override, later)).member_id == "y"  # last added


def test_member_shifts_cut_the_timeline_and_merge_adjacent_pieces() -> None:
    daily = layer(member_ids=("a", "b"))
    override = d.Override("b", MON + 2 * H, MON + 4 * H, "ovr-1")
    shifts = s.member_shifts((daily,), "a", MON, MON + 4 * DAY, (override,))
    assert [(x.starts_at, x.ends_at) for x in shifts] == [
        (MON, MON + 2 * H),
        (MON + 4 * H, MON + DAY),
        (MON + 2 * DAY, MON + 3 * DAY),
    ]
    b = s.member_shifts((daily,), "b", MON, MON + 2 * DAY, (override,))
    assert [(x.decided_by, x.starts_at, x.ends_at) for x in b] == [
        (d.DecidedBy.OVERRIDE, MON + 2 * H, MON + 4 * H),
        (d.DecidedBy.LAYER, MON + DAY, MON + 2 * DAY),
    ]
    assert s.covers((daily,), "a", MON, MON + DAY)
    assert not s.covers((daily,), "a", MON, MON + DAY, (override,))


def test_a_team_with_only_a_rotation_is_a_one_layer_schedule() -> None:
    rotation = d.Rotation(("a", "b"), "09:00", "Asia/Shanghai", 7, "2026-01-05")
    legacy = d.Team("ops", members=(d.Member("a"), d.Member("b")), rotation=rotation)
    (only,) = legacy.schedule()
    assert only.member_ids == ("a", "b") and only.shift_days == 7
    start = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # 09:00 Shanghai
    assert legacy.on_call(start) == "a" and legacy.on_call(start + 7 * DAY) == "b"
    assert legacy.who(start).decided_by is d.DecidedBy.LAYER


def test_swap_requests_are_validated_then_accepted_move_the_shifts() -> None:
    ops = team(layer(member_ids=("a", "b")))
    now = MON - H
    ask = d.ShiftSwap("", "a", "b", MON, MON + DAY, MON + DAY, MON + 2 * DAY)
    (requested,) = d.decide_swap_request(ops, ask, now=now)
    assert requested.swap.swap_id == "swap-1" and requested.swap.status is d.SwapStatus.REQUESTED
    ops = evolved(ops, requested)
    assert ops is not None and ops.on_call(MON + H) == "a"  # not before it is accepted
    with pytest.raises(d.IllegalTransition, match="overlapping"):
        d.decide_swap_request(ops, ask, now=now)
    (accepted,) = d.decide_swap(ops, "swap-1", "accept", by="b")
    ops = evolved(ops, accepted)
    assert (ops.on_call(MON + H), ops.on_call(MON + DAY + H)) == ("b", "a")
    assert d.find_swap(ops, "swap-1").decided_by == "b"
    with pytest.raises(d.IllegalTransition, match="accepted, not requested"):
        d.decide_swap(ops, "swap-1", "decline", by="b")
    with pytest.raises(d.NotFound):
        d.decide_swap(ops, "swap-9", "accept", by="b")


@pytest.mark.parametrize(
    ("swap", "error", "field"),
    [
        (d.ShiftSwap("", "a", "zz", MON, MON + DAY), d.NotFound, ""),
        (d.ShiftSwap("", "a", "b", MON + DAY, MON), d.InvalidCommand, "ends_at"),
        (d.ShiftSwap("", "a", "a", MON, MON + DAY), d.InvalidCommand, "counterpart_id"),
        (d.ShiftSwap("", "a", "b", MON, MON + DAY, MON + DAY), d.InvalidCommand, "return_ends_at"),
        (d.ShiftSwap("", "b", "a", MON, MON + DAY), d.IllegalTransition, ""),  # not b's shift
    ],
)
def test_bad_swap_requests_are_refused(swap: d.ShiftSwap, error: type, field: str) -> None:
    ops = team(layer(member_ids=("a", "b")))
    with pytest.raises(error) as caught:
        d.decide_swap_request(ops, swap, now=MON - H)
    if field:
        assert isinstance(caught.value, d.InvalidCommand)
        assert field in {name for name, _ in caught.value.violations}


def test_only_the_counterpart_accepts_and_only_the_requester_cancels() -> None:
    swap = d.ShiftSwap("swap-1", "a", "b", MON, MON + DAY, status=d.SwapStatus.REQUESTED)
    nobody: frozenset[str] = frozenset({"oncall"})
    assert d.may_decide_swap(swap, "b", nobody, "accept")
    assert not d.may_decide_swap(swap, "a", nobody, "accept")
    assert not d.may_decide_swap(swap, "c", nobody, "decline")
    assert d.may_decide_swap(swap, "a", nobody, "cancel")
    assert not d.may_decide_swap(swap, "b", nobody, "cancel")
    assert d.may_decide_swap(swap, "c", frozenset({"supervisor"}), "accept")


def test_overrides_are_validated_and_a_redefinition_keeps_runtime_state() -> None:
    ops = team(layer(member_ids=("a", "b")))
    with pytest.raises(d.NotFound):
        d.decide_override(ops, "zz", MON, MON + H, by="a", now=MON - H)
    with pytest.raises(d.InvalidCommand):
        d.decide_override(ops, "a", MON + H, MON, by="a", now=MON - H)
    (added,) = d.decide_override(ops, "x", MON, MON + H, by="lead", now=MON - H)
    assert added.override == d.Override("x", MON, MON + H, "ovr-1", "lead")
    ops = evolved(ops, added)
    redefined = d.Team("ops", members=ops.members, layers=ops.layers)
    assert d.decide_team(ops, redefined) == []  # the definition did not change
    (defined,) = d.decide_team(ops, d.Team("ops", members=ops.members, name="Ops"))
    after = d.evolve_team(ops, defined, MON)
    assert after is not None and after.overrides == (added.override,)


def test_a_removed_override_decides_nothing_and_its_id_is_never_given_again() -> None:
    ops = team(layer(member_ids=("a", "b")))
    (first,) = d.decide_override(ops, "x", MON, MON + H, by="lead", now=MON - H)
    ops = evolved(ops, first)
    assert ops.on_call(MON) == "x"
    with pytest.raises(d.NotFound, match="ovr-9"):
        d.decide_override_removal(ops, "ovr-9", by="lead")
    with pytest.raises(d.InvalidCommand):
        d.decide_override_removal(ops, "", by="lead")
    (removed,) = d.decide_override_removal(ops, "ovr-1", by="lead")
    assert removed == d.OverrideRemoved(first.override, "lead")
    ops = evolved(ops, removed)
    assert ops.on_call(MON) == "a" and ops.who(MON).decided_by is d.DecidedBy.LAYER
    with pytest.raises(d.NotFound):
        d.decide_override_removal(ops, "ovr-1", by="lead")
    (second,) = d.decide_override(ops, "y", MON, MON + H, by="lead", now=MON - H)
    assert second.override.override_id == "ovr-2"
    # A redefinition keeps the count, and the definition does not carry it.
    (defined,) = d.decide_team(evolved(ops, second), d.Team("ops", members=ops.members))
    assert defined.team.overrides_added == 0
    assert evolved(evolved(ops, second), defined).overrides_added == 2


def test_overrides_and_swaps_that_ended_before_the_retention_are_pruned() -> None:
    ops = team(layer(member_ids=("a", "b")))
    old = d.Override("x", MON, MON + H, "ovr-1", "lead")
    recent = d.Override("y", MON + 20 * DAY, MON + 21 * DAY, "ovr-2", "lead")
    static = d.Override("x", MON, MON + H)  # from the team's file: PutTeam changes it
    old_swap = d.ShiftSwap("swap-1", "a", "b", MON, MON + DAY, status=d.SwapStatus.ACCEPTED)
    # A swap ends with its return shift: this one still weighs (its return ends later).
    returning = d.ShiftSwap(
        "swap-2", "a", "b", MON, MON + DAY, MON + 25 * DAY, MON + 26 * DAY, d.SwapStatus.REQUESTED
    )
    ops = d.Team(
        "ops",
        members=ops.members,
        layers=ops.layers,
        overrides=(static, old, recent),
        swaps=(old_swap, returning),
        overrides_added=2,
        swaps_requested=2,
    )
    retention = 30 * DAY
    now = MON + 32 * DAY
    assert d.decide_prune(ops, MON + 30 * DAY, retention) == []  # nothing ended long enough ago
    (pruned,) = d.decide_prune(ops, now, retention)
    assert pruned == d.SchedulePruned(("ovr-1",), ("swap-1",), now - retention)
    after = evolved(ops, pruned)
    assert after.overrides == (static, recent) and after.swaps == (returning,)
    assert d.decide_prune(after, now, retention) == []
    # Ids keep counting past what was pruned.
    (added,) = d.decide_override(after, "x", now, now + H, by="lead", now=now)
    assert added.override.override_id == "ovr-3"
    ask = d.ShiftSwap("", "a", "b", MON + 40 * DAY, MON + 41 * DAY)
    (asked,) = d.decide_swap_request(after, ask, now=now)
    assert asked.swap.swap_id == "swap-3"


def test_layer_violations_name_their_fields() -> None:
    bad = layer(
        member_ids=("a", "nobody"),
        rotation_type=d.RotationType.CUSTOM,
        time_zone="Mars/Olympus",
        handoff_time="25:00",
        restrictions=(d.Restriction((8,), "9", "10:00"),),
    )
    fields = {name for name, _ in d.validate_team(team(bad))}
    assert fields >= {
        "team.layers[0].member_ids",
        "team.layers[0]",
        "team.layers[0].time_zone",
        "team.layers[0].handoff_time",
        "team.layers[0].restrictions[0].weekdays",
        "team.layers[0].restrictions[0].start_time",
    }


def test_the_file_s_follow_the_sun_example_loads_as_layers(tmp_path: Path) -> None:
    example = [
        line.removeprefix("#   ")
        for line in (Path(config.__file__).parent / "oncall_default.yaml").read_text().splitlines()
        if line.startswith("#   ")
    ]
    document: dict[str, Any] = {
        "teams": {"ops": {"members": [{"id": m} for m in ("ts-lead", "ts-alice", "ts-bob")]}}
    }
    document["teams"]["ops"].update(yaml.safe_load("\n".join(example)))
    path = tmp_path / "oncall.yaml"
    path.write_text(yaml.safe_dump(document))
    (ops,) = config.load_teams(str(path))
    assert d.validate_team(ops) == []
    assert [layer.name for layer in ops.layers] == ["base", "asia", "americas"]
    americas = ops.layers[2]
    assert americas.restrictions == (d.Restriction((1, 2, 3, 4, 5), "09:00", "21:00"),)
    assert ops.who(datetime(2026, 1, 6, 3, 0, tzinfo=UTC)) == d.OnCall(
        "ts-alice", d.DecidedBy.LAYER, 1, "asia"
    )
    saturday_night = datetime(2026, 1, 10, 23, 0, tzinfo=UTC)
    assert ops.on_call(saturday_night) == "ts-lead"
