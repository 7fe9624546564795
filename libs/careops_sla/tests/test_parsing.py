"""The SLA policy file is validated by one pydantic model: located errors, no unknown keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import careops_sla as sla

DEFAULT_YAML = Path(sla.__file__).parent / "sla_default.yaml"


def _write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "sla.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_an_error_names_the_file_and_the_field_path(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))
    data["overrides"] = [{"channel": "email", "first_response": "1m"}, {"tier": "vip"}]
    path = _write(tmp_path, data)
    with pytest.raises(sla.PolicyError) as error:
        sla.load_policy(path)
    assert str(error.value).startswith(f"{path}: overrides[1].tier: unknown tier 'vip'")


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ((), "owner"),
        (("calendars", "office"), "lunch"),
        (("channels", "email"), "sla"),
        (("resolution",), "critical"),
        (("tier_factors",), "vip"),
    ],
)
def test_unknown_keys_are_rejected_where_they_stand(where: tuple[str, ...], key: str) -> None:
    data = yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))
    node = data
    for part in where:
        node = node[part]
    node[key] = "1h"
    with pytest.raises(sla.PolicyError, match=f"^{'.'.join((*where, key))}: unknown key"):
        sla.parse_policy(data)


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(sla.PolicyError) as error:
        sla.parse_policy({"version": "x", "channels": 3})
    message = str(error.value)
    assert "calendars: missing" in message
    assert "channels: must be a mapping, got int" in message
    assert "tier_factors: missing" in message


def test_policy_text_that_is_not_yaml_or_not_a_mapping_is_a_policy_error() -> None:
    with pytest.raises(sla.PolicyError, match="not YAML"):
        sla.parse_policy_text("version: [unclosed")
    with pytest.raises(sla.PolicyError, match="^policy: must be a mapping, got list"):
        sla.parse_policy_text("- a\n- b\n")
    assert sla.parse_policy_text(DEFAULT_YAML.read_text(encoding="utf-8")) == sla.default_policy()


def test_the_pure_kernel_imports_neither_pydantic_nor_yaml() -> None:
    code = (
        "import sys, careops_sla, careops_sla.clock;"
        "print(sorted({'pydantic', 'yaml'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
