"""Quality's team directory: one pydantic model, errors located, no unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from careops_platform.config_files import ConfigError

from quality.config import load_teams


def test_an_error_names_the_file_and_the_team(tmp_path: Path) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text("teams:\n  ok: [agent-li]\n  odd: [agent-li, 3]\n")
    with pytest.raises(ConfigError, match=f"^{path}: teams.odd: must be a list of agent ids"):
        load_teams(str(path))


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text("teams:\n  ok: [agent-li]\nleads: {ok: agent-li}\n")
    with pytest.raises(ConfigError, match="leads: unknown key"):
        load_teams(str(path))


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_teams(str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("teams: [unclosed")
    with pytest.raises(ConfigError, match="not YAML"):
        load_teams(str(broken))
