"""The team directory quality reads KPIs per team from."""

from __future__ import annotations

from pathlib import Path

import pytest

from quality.config import load_teams


def test_the_default_directory_names_agents_for_every_team() -> None:
    teams = load_teams(None).teams
    assert teams and all(teams.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("teams:\n  empty: []\n", "at least one agent"),
        ("teams:\n  odd: agent-li\n", "list of agent ids"),
        ("teams: [a, b]\n", "map team names"),
    ],
)
def test_a_bad_directory_is_rejected_naming_the_team(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_teams(str(path))
