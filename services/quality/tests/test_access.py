"""Pure tests of who reads whose scorecard (docs/permissions.md, rule 4)."""

from __future__ import annotations

import pytest

from quality import domain as d


@pytest.mark.parametrize(
    ("roles", "agent_id", "team", "allowed"),
    [
        (["agent"], "agent-li", "", True),  # their own
        (["agent"], "agent-wang", "", False),  # another agent's
        (["agent"], "", "complaints", False),  # a team's
        (["senior_agent"], "agent-wang", "", True),
        (["supervisor"], "", "complaints", True),
        (["admin"], "agent-wang", "", True),
        (["oncall", "integration"], "agent-li", "", False),
    ],
)
def test_may_read_scorecard(roles: list[str], agent_id: str, team: str, allowed: bool) -> None:
    assert d.may_read_scorecard("agent-li", roles, agent_id=agent_id, team=team) is allowed


def test_an_agent_without_a_subject_reads_no_scorecard() -> None:
    assert not d.may_read_scorecard("", ["agent"], agent_id="")
