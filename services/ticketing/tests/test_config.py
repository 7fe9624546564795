"""Ticketing's agent directory: one pydantic model, errors located, no unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from careops_platform.config_files import ConfigError

from ticketing import domain
from ticketing.config import load_agents


def _write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "agents.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_the_packaged_sample_loads() -> None:
    agents = load_agents(None)
    assert agents[0] == domain.Agent(
        "agent-li", frozenset({"consultation", "return", "chat", "email", "web"}), 12
    )


@pytest.mark.parametrize(
    ("agents", "message"),
    [
        ([{"id": "a"}, {"skills": ["chat"]}], r"agents\[1\]\.id: missing"),
        ([{"id": "a", "capacity": 0}], r"agents\[0\]\.capacity: .*greater than or equal to 1"),
        ([{"id": "a", "team": "x"}], r"agents\[0\]\.team: unknown key"),
        (["agent-li"], r"agents\[0\]: must be a mapping, got str"),
    ],
)
def test_a_bad_directory_names_the_file_and_the_entry(
    tmp_path: Path, agents: list[Any], message: str
) -> None:
    path = _write(tmp_path, {"agents": agents})
    with pytest.raises(ConfigError, match=f"^{path}: {message}"):
        load_agents(path)


def test_unknown_top_level_keys_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {"agents": [], "teams": []})
    with pytest.raises(ConfigError, match="teams: unknown key"):
        load_agents(path)
