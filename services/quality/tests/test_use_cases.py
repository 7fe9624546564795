"""The use cases behind WhatIf, the team filter and KPIs by day (no NATS, no SQL)."""

from __future__ import annotations

import importlib.resources
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import careops_sla
import pytest
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.errors import InvalidArgument, NotFound
from careops_platform.policies import PolicyBook

from quality import domain
from quality.application import (
    MAX_DAYS,
    MAX_POLICY,
    MAX_WHAT_IF_TICKETS,
    STREAM,
    Day,
    Teams,
    Timelines,
    WhatIf,
    kpi_days,
    what_if_as_of,
)
from quality.config import TEAMS_KIND

OPENED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def default_yaml() -> str:
    return importlib.resources.files("careops_sla").joinpath("sla_default.yaml").read_text()


def chat_ticket(reply_after: timedelta) -> Timelines:
    row = SimpleNamespace(channel="chat", priority="normal", tier="regular")
    steps = [
        domain.TimelineStep(OPENED, domain.Step.OPENED, "normal"),
        domain.TimelineStep(OPENED + reply_after, domain.Step.AGENT_REPLY),
    ]
    return [(row, steps)]


def test_an_alternative_policy_is_parsed_from_yaml() -> None:
    text = default_yaml().replace("version: default-2026.1", "version: slower-chat")
    assert WhatIf.alternative(text).version == "slower-chat"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("  ", "must not be empty"),
        ("x" * (MAX_POLICY + 1), "too long"),
        ("- a list", "policy: must be a mapping"),
        ("version: [", None),
    ],
)
def test_a_bad_policy_is_invalid_on_policy_yaml(text: str, why: str | None) -> None:
    with pytest.raises(InvalidArgument) as raised:
        WhatIf.alternative(text)
    [violation] = raised.value.violations
    assert violation.field == "policy_yaml"
    if why is not None:
        assert why in violation.description


async def test_the_replay_compares_the_policy_in_force_with_the_alternative() -> None:
    text = default_yaml().replace(
        "chat: {calendar: 24x7, first_response: 30m}", "chat: {calendar: 24x7, first_response: 1h}"
    )
    alternative = WhatIf.alternative(text.replace("default-2026.1", "slow-chat"))
    limits: list[int] = []

    async def read(limit: int) -> Timelines | None:
        limits.append(limit)
        return chat_ticket(timedelta(minutes=45))

    what_if = WhatIf(careops_sla.load_policy(None))
    outcome = await what_if.compare(alternative, read, as_of=OPENED + timedelta(days=1))
    assert limits == [MAX_WHAT_IF_TICKETS]
    assert outcome.tickets == 1
    assert outcome.actual.policy_version == "default-2026.1"
    assert (outcome.actual.first_responses, outcome.actual.first_response_breaches) == (1, 1)
    assert outcome.actual.first_responses_on_time == 0
    assert outcome.alternative.policy_version == "slow-chat"
    assert outcome.alternative.first_responses_on_time == 1
    assert outcome.alternative.sla_compliance_ratio == 1.0


async def test_the_what_if_groups_per_quality_team_of_the_tickets_agent() -> None:
    store = InMemoryEventStore()
    await store.ensure_stream(STREAM)
    teams = PolicyBook(store, STREAM, "careops.quality.policy", TEAMS_KIND)
    document = "teams: {north: [agent-li], south: [agent-wang], all: [agent-li, agent-wang]}"
    await teams.put(document, author="lead", command_id="c1")
    late, early = chat_ticket(timedelta(minutes=45)), chat_ticket(timedelta(minutes=5))
    rows = [
        (SimpleNamespace(**vars(late[0][0]), agent_id="agent-li"), late[0][1]),
        (SimpleNamespace(**vars(early[0][0]), agent_id="agent-wang"), early[0][1]),
        (SimpleNamespace(**vars(early[0][0]), agent_id=""), early[0][1]),  # unassigned
    ]

    async def read(limit: int) -> Timelines | None:
        return rows

    policy = careops_sla.load_policy(None)
    stricter = WhatIf.alternative(
        default_yaml()
        .replace(
            "chat: {calendar: 24x7, first_response: 30m}",
            "chat: {calendar: 24x7, first_response: 2m}",
        )
        .replace("default-2026.1", "strict-chat")
    )
    outcome = await WhatIf(policy, teams=teams).compare(
        stricter, read, as_of=OPENED + timedelta(days=1)
    )
    by_team = {g.key: g for g in outcome.by_team}
    assert {key: g.tickets for key, g in by_team.items()} == {"all": 2, "north": 1, "south": 1}
    north, south = by_team["north"], by_team["south"]
    assert (north.actual.first_responses_on_time, north.alternative.first_responses_on_time) == (
        0,
        0,
    )
    assert (south.actual.first_responses_on_time, south.alternative.first_responses_on_time) == (
        1,
        0,
    )
    assert outcome.tickets == 3 and not outcome.changes_nothing


async def test_a_what_if_over_too_many_tickets_is_invalid_on_the_period() -> None:
    async def too_many(limit: int) -> Timelines | None:
        return None

    policy = careops_sla.load_policy(None)
    with pytest.raises(InvalidArgument) as raised:
        await WhatIf(policy).compare(policy, too_many, as_of=OPENED)
    assert [v.field for v in raised.value.violations] == ["period"]


def test_a_what_if_replays_to_the_period_end_but_never_past_now() -> None:
    assert what_if_as_of(None, OPENED) == OPENED
    assert what_if_as_of(OPENED - timedelta(days=1), OPENED) == OPENED - timedelta(days=1)
    assert what_if_as_of(OPENED + timedelta(days=1), OPENED) == OPENED


async def test_a_team_stands_for_its_agents_and_an_unknown_one_is_not_found() -> None:
    store = InMemoryEventStore()
    await store.ensure_stream(STREAM)
    book = PolicyBook(store, STREAM, "careops.quality.policy", TEAMS_KIND)
    with pytest.raises(NotFound, match="no teams policy has been put yet"):
        await Teams(book).agents("north")
    await book.put("teams: {north: [a1, a2]}", author="lead", command_id="c1")
    assert await Teams(book).agents("north") == ("a1", "a2")
    with pytest.raises(NotFound, match=r"no team named 'south' \(known: north\)"):
        await Teams(book).agents("south")


def test_kpi_days_cut_the_first_and_last_day_to_the_period() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    end = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    assert kpi_days(start, end) == [
        Day(midnight, start, midnight + timedelta(days=1)),
        Day(
            midnight + timedelta(days=1), midnight + timedelta(days=1), midnight + timedelta(days=2)
        ),
        Day(midnight + timedelta(days=2), midnight + timedelta(days=2), end),
    ]


def test_kpi_days_need_both_bounds_and_at_most_max_days() -> None:
    with pytest.raises(InvalidArgument, match="by_day needs a period with start and end"):
        kpi_days(None, OPENED)
    with pytest.raises(InvalidArgument, match=f"at most {MAX_DAYS} days"):
        kpi_days(OPENED, OPENED + timedelta(days=MAX_DAYS + 1))
