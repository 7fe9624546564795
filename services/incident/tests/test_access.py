"""Pure tests of who may acknowledge a page (docs/permissions.md, rule 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from incident import domain as d
from incident.tests.test_domain import T0, declare, run, team

# ts-a is on call at T0 (the rotation's first shift), ts-b is next, ts-c manages the team.
TEAM = team("technical_support", "ts-a", "ts-b", "ts-c")
SUPPORT = d.Team(
    "technical_support",
    members=TEAM.members,
    rotation=TEAM.rotation,
    escalation=TEAM.escalation,
    manager_id="ts-lead",
)


def page(member: str = "ts-a", step: int = 0, round_: int = 0) -> d.PageState:
    return d.PageState(
        page_id="I-1-p0",
        team_id="technical_support",
        member_id=member,
        step=step,
        round=round_,
        engagement=d.Engagement.RED,
        requested_at=T0,
        ack_due_at=T0 + timedelta(minutes=1),
    )


def test_the_paged_member_their_escalation_target_the_lead_and_the_oncall_are_entitled() -> None:
    assert d.entitled_to_acknowledge(page("ts-c"), SUPPORT, T0) == {
        "ts-c",  # paged
        "ts-b",  # the chain's next step after step 0 is "next" after the on-call
        "ts-lead",  # the team's manager
        "ts-a",  # on call now
    }


@pytest.mark.parametrize(
    ("subject", "roles", "allowed"),
    [
        ("ts-a", ["oncall"], True),
        ("ts-b", ["oncall"], True),
        ("ts-lead", ["supervisor"], True),
        ("ts-c", ["oncall"], False),  # a member of the team, but neither paged, next nor lead
        ("nobody-at-all", ["oncall", "supervisor"], False),
        ("ts-a", ["agent"], False),  # the table's roles are checked again
        ("ts-a", ["admin"], False),
        ("", ["oncall"], False),
    ],
)
def test_may_acknowledge(subject: str, roles: list[str], allowed: bool) -> None:
    assert d.may_acknowledge(page(), SUPPORT, subject, roles, T0) is allowed


def test_after_the_last_step_of_the_last_round_there_is_no_escalation_target() -> None:
    assert d.escalation_target(page("ts-b", step=1, round_=0), SUPPORT, T0) == ""
    # With a second round the chain starts again at its first step: the on-call.
    twice = d.Team(
        "technical_support",
        members=TEAM.members,
        rotation=TEAM.rotation,
        escalation=d.EscalationPolicy(TEAM.chain().steps, 2),
    )
    assert d.escalation_target(page("ts-b", step=1, round_=0), twice, T0) == "ts-a"


def test_the_escalation_target_is_whom_the_chain_pages_next() -> None:
    state, _ = declare()
    first = state.pages["I-1-p0"]
    teams = team("technical_support", "ts-a", "ts-b")
    expected = d.escalation_target(first, teams, T0 + timedelta(seconds=60))
    _, events = run(state, d.FirePageTimer("I-1-p0"), T0 + timedelta(seconds=60))
    paged = [e.member_id for e in events if isinstance(e, d.PageRequested)]
    assert paged == [expected] == ["ts-b"]
