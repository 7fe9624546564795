"""Incident's configuration files: one pydantic model each, errors located, no unknown keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from careops_platform.config_files import ConfigError

from incident import config
from incident import domain as d


def _write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_the_packaged_defaults_load() -> None:
    teams = config.load_teams(None)
    assert [t.team_id for t in teams][:2] == ["technical_support", "customer_service"]
    assert teams[0].rotation is not None and teams[0].rotation.time_zone == "Asia/Shanghai"
    rows = config.load_matrix(None)
    assert rows[0].incident_type == "server_crash"
    assert rows[0].cells[0] == d.MatrixCell("technical_support", d.Engagement.RED)


def test_an_oncall_error_names_the_file_and_the_field_path(tmp_path: Path) -> None:
    member = {"id": "a", "contacts": [{"kind": "webhook", "address": "http://x"}, {"kind": "fax"}]}
    path = _write(tmp_path, "oncall.yaml", {"teams": {"sre": {"members": [member]}}})
    with pytest.raises(ConfigError) as error:
        config.load_teams(path)
    assert str(error.value).startswith(
        f"{path}: teams.sre.members[0].contacts[1].kind: 'fax' is not one of webhook"
    )


@pytest.mark.parametrize(
    ("team", "where"),
    [
        ({"members": [{"id": "a", "phone": "123"}]}, "teams.sre.members[0].phone"),
        ({"members": [{"id": "a"}], "pager": True}, "teams.sre.pager"),
        ({"members": [{"id": "a"}], "rotation": {"every": 7}}, "teams.sre.rotation.every"),
        (
            {
                "members": [{"id": "a"}],
                "escalation": {"steps": [{"target": "oncall", "wait_seconds": 1, "x": 1}]},
            },
            "teams.sre.escalation.steps[0].x",
        ),
    ],
)
def test_unknown_oncall_keys_are_rejected_where_they_stand(
    tmp_path: Path, team: dict[str, Any], where: str
) -> None:
    path = _write(tmp_path, "oncall.yaml", {"teams": {"sre": team}})
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {where}: unknown key")):
        config.load_teams(path)


def test_oncall_values_convert_as_yaml_writes_them(tmp_path: Path) -> None:
    team = {
        "members": [{"id": "a"}, {"id": 7}],
        "rotation": {"members": ["a"], "start_date": yaml.safe_load("2026-02-02")},
        "overrides": [
            {
                "member": "a",
                "starts_at": "2026-01-01T00:00:00+00:00",
                "ends_at": "2026-01-02T00:00:00+00:00",
            }
        ],
        "escalation": {},
    }
    path = _write(tmp_path, "oncall.yaml", {"teams": {"sre": team}})
    [loaded] = config.load_teams(path)
    assert loaded.name == "sre" and loaded.members[1].member_id == "7"
    assert loaded.rotation is not None and loaded.rotation.start_date == "2026-02-02"
    assert loaded.escalation is None  # an empty section is no section
    assert loaded.overrides[0].ends_at.isoformat() == "2026-01-02T00:00:00+00:00"


def test_a_matrix_error_is_located_and_unknown_keys_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "matrix.yaml", {"types": {"outage": {"teams": {"sre": "purple"}}}})
    with pytest.raises(ConfigError, match=r"types\.outage\.teams\.sre: 'purple' is not one of"):
        config.load_matrix(path)
    path = _write(tmp_path, "matrix.yaml", {"types": {"outage": {"titel": "Outage"}}})
    with pytest.raises(ConfigError, match=r"types\.outage\.titel: unknown key"):
        config.load_matrix(path)
    path = _write(tmp_path, "matrix.yaml", {"kinds": {}})
    with pytest.raises(ConfigError, match=r"kinds: unknown key"):
        config.load_matrix(path)


def test_the_risk_model_is_validated_naming_the_value() -> None:
    model = config.risk_model("risk-x", (0.4, 0.3, 0.2, 0.1), (0.7, 0.4))
    assert (model.version, model.scope_weight, model.level_b_threshold) == ("risk-x", 0.4, 0.4)
    with pytest.raises(ConfigError, match=r"weights\[2\]: must be a number between 0 and 1"):
        config.risk_model("risk-x", (0.4, 0.3, 2.0, 0.1), (0.7, 0.4))
    with pytest.raises(ConfigError, match="thresholds: level A's threshold"):
        config.risk_model("risk-x", (0.4, 0.3, 0.2, 0.1), (0.3, 0.4))


def test_policies_routing_and_notification_rules_load_from_the_oncall_file(
    tmp_path: Path,
) -> None:
    team = {
        "members": [
            {
                "id": "a",
                "contacts": [
                    {"kind": "webhook", "address": "http://x/a"},
                    {"kind": "email", "address": "a@example.test"},
                ],
                "notify": [{"kind": "webhook"}, {"kind": "email", "delay_seconds": 120}],
            },
            {"id": "b"},
        ],
        "policies": {
            "all-hands": {
                "steps": [
                    {"target": "oncall", "wait_seconds": 300},
                    {"target": "team", "wait_seconds": 300},
                ]
            }
        },
        "routing": [
            {"levels": ["a"], "policy": "all-hands"},
            {
                "levels": ["c"],
                "from": "20:00",
                "until": "08:00",
                "time_zone": "Europe/Berlin",
                "hold": True,
                "skip_steps": [1],
            },
        ],
    }
    path = _write(tmp_path, "oncall.yaml", {"teams": {"sre": team}})
    [loaded] = config.load_teams(path)
    assert loaded.members[0].notification_rules == (
        d.NotificationRule(d.ContactKind.WEBHOOK, 0),
        d.NotificationRule(d.ContactKind.EMAIL, 120),
    )
    assert [p.policy_id for p in loaded.policies] == ["all-hands"]
    assert loaded.routing[0] == d.RoutingRule("all-hands", (d.Level.A,))
    assert loaded.routing[1] == d.RoutingRule(
        "", (d.Level.C,), "20:00", "08:00", "Europe/Berlin", (1,), True
    )
    assert d.validate_team(loaded) == []
    team["routing"] = [{"levels": ["d"]}]
    path = _write(tmp_path, "bad.yaml", {"teams": {"sre": team}})
    with pytest.raises(ConfigError, match=re.escape("teams.sre.routing[0].levels[0]: 'd'")):
        config.load_teams(path)
