"""The permission table: it covers every RPC of every generated service and nothing else, the
loader refuses bad files with located errors, and authorize agrees with the table."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import careops
import grpc
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from careops_platform import permissions as p
from careops_platform.config_files import ConfigError
from careops_platform.errors import PermissionDenied
from careops_platform.interceptors import rich_status, status_of

DOCS = Path(__file__).resolve().parents[3] / "docs" / "permissions.md"
TABLE = p.load_permissions()
METHODS = sorted(TABLE.methods())
ROLES = [role.value for role in p.Role]
ERASE = "/careops.customer.v1.CustomerProfileService/EraseCustomer"
OPEN = "/careops.ticketing.v1.TicketingService/OpenTicket"


def generated_methods() -> set[str]:
    """Returns the full name of every RPC of every service in every generated `*_pb2` module."""
    methods = set()
    for module in pkgutil.walk_packages(careops.__path__, "careops."):
        if not module.name.endswith("_pb2"):
            continue
        descriptor = importlib.import_module(module.name).DESCRIPTOR
        for service in descriptor.services_by_name.values():
            methods |= {p.method_path(service.full_name, m.name) for m in service.methods}
    return methods


def packaged() -> dict[str, Any]:
    """Returns the packaged permission file as data, to be spoiled by a test."""
    data: dict[str, Any] = yaml.safe_load(Path(p.__file__).with_name(p.DEFAULT_FILE).read_text())
    return data


def load_data(tmp_path: Path, data: dict[str, Any]) -> p.PermissionTable:
    path = tmp_path / "permissions.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p.load_permissions(str(path))


def rules_of(data: dict[str, Any], service: str) -> list[dict[str, Any]]:
    """Returns the rule list of `service` (its short name) in `data`."""
    entry = next(s for s in data["services"] if s["service"].endswith(f".{service}"))
    rules: list[dict[str, Any]] = entry["rpcs"]
    return rules


def test_every_rpc_of_every_generated_service_is_in_the_table_and_nothing_else() -> None:
    assert TABLE.methods() == generated_methods()
    # 49 + compensation (issue 12 item 3: grant, approve, reject, list) + survey templates
    # (item 6: put, get, list versions) + the agent directory (item 5: put, get, list,
    # availability) + the conversation (item 1: get conversation, put, list, delete macro)
    # + issue 13: policies as data (quality teams, the SLA policy and the risk policy: put,
    # get, list versions each; the matrix's versions), drills (schedule, run, cancel, list,
    # report, record figure, get and put scenarios), pause accountability (list holds, pause
    # report) and the incident what-if + issue 14: alert intake (ingest; the integrations
    # policy: put, get, list versions), schedules (override add/remove, swap
    # request/accept/decline/cancel, who is on call, a member's shifts), the public (publish
    # statement, status page, notify customers and the notice templates: put, get, list
    # versions) + issue 15: the console's own permissions (GetMyPermissions) and its pushes
    # (WatchKpis, WatchCustomer360)
    assert len(METHODS) == 108


def test_every_permission_name_is_distinct() -> None:
    names = [TABLE.permission(method).name for method in METHODS]  # type: ignore[union-attr]
    assert len(set(names)) == len(names)


def test_erasure_matrix_team_and_rebuild_are_for_supervisors_and_admins_only() -> None:
    guarded = {
        ERASE: {"supervisor", "admin"},
        "/careops.customer.v1.CustomerProfileService/ExportCustomerData": {"supervisor", "admin"},
        "/careops.incident.v1.IncidentService/PutResponseMatrix": {"supervisor", "admin"},
        "/careops.incident.v1.IncidentService/PutTeam": {"supervisor", "admin"},
        "/careops.quality.v1.QualityService/WhatIf": {"supervisor", "admin"},
        "/careops.common.v1.ProjectionAdminService/RebuildProjection": {"admin"},
    }
    for method, roles in guarded.items():
        permission = TABLE.permission(method)
        assert permission is not None
        assert {role.value for role in permission.roles} == roles, method


def test_an_agent_may_open_a_ticket_but_not_erase_a_customer() -> None:
    TABLE.authorize(["agent"], OPEN)
    with pytest.raises(PermissionDenied) as caught:
        TABLE.authorize(["agent"], ERASE)
    assert caught.value.permission == "customer.erase"
    assert caught.value.message == (
        "permission customer.erase is required (granted to supervisor, admin); "
        "the caller's roles: agent"
    )


def test_the_module_authorize_reads_the_packaged_table() -> None:
    p.authorize(["supervisor"], ERASE)
    with pytest.raises(PermissionDenied, match="customer.erase"):
        p.authorize(["agent", "integration"], ERASE)


def test_no_roles_unknown_roles_and_unknown_methods_are_denied() -> None:
    with pytest.raises(PermissionDenied, match="the caller's roles: none"):
        TABLE.authorize([], OPEN)
    with pytest.raises(PermissionDenied, match="the caller's roles: root"):
        TABLE.authorize(["root"], OPEN)
    with pytest.raises(PermissionDenied, match="in no permission rule") as caught:
        TABLE.authorize(ROLES, "/careops.ticketing.v1.TicketingService/DropTables")
    assert caught.value.permission == ""


def test_permission_denied_maps_to_permission_denied_through_the_one_error_path() -> None:
    with pytest.raises(PermissionDenied) as caught:
        TABLE.authorize(["agent"], ERASE)
    error = status_of(caught.value, {})
    assert error is caught.value
    status = rich_status(caught.value)
    assert status.code == grpc.StatusCode.PERMISSION_DENIED
    assert "customer.erase" in status.details


@given(
    method=st.sampled_from(METHODS),
    roles=st.lists(st.sampled_from([*ROLES, "root", ""]), max_size=4),
)
def test_authorize_agrees_with_the_table_for_every_method_and_role_set(
    method: str, roles: list[str]
) -> None:
    permission = TABLE.permission(method)
    assert permission is not None
    allowed = any(role in {r.value for r in permission.roles} for role in roles)
    assert TABLE.allows(roles, method) is allowed
    if allowed:
        TABLE.authorize(roles, method)
    else:
        with pytest.raises(PermissionDenied) as caught:
            TABLE.authorize(roles, method)
        assert caught.value.permission == permission.name


@pytest.mark.parametrize("role", ROLES)
def test_each_single_role_is_allowed_exactly_where_the_table_says(role: str) -> None:
    for method in METHODS:
        permission = TABLE.permission(method)
        assert permission is not None
        assert TABLE.allows([role], method) is (p.Role(role) in permission.roles)


def test_the_docs_table_is_the_yaml_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert p.markdown_table(TABLE) in text, (
        "docs/permissions.md is out of date; paste in:\n" + p.markdown_table(TABLE)
    )


# ----------------------------------------------------------------------------- bad files


def spoil_unknown_role(data: dict[str, Any]) -> None:
    rules_of(data, "TicketingService")[0]["roles"].append("root")


def spoil_unknown_rpc(data: dict[str, Any]) -> None:
    rules_of(data, "TicketingService").append(
        {"rpc": "DropTables", "permission": "ticket.drop", "roles": ["admin"]}
    )


def spoil_rpc_twice(data: dict[str, Any]) -> None:
    rules = rules_of(data, "CustomerProfileService")
    rules.append({**rules[0], "permission": "customer.register_again"})


def spoil_missing_rpc(data: dict[str, Any]) -> None:
    rules = rules_of(data, "IncidentService")
    rules[:] = [rule for rule in rules if rule["rpc"] != "GetTeam"]


def spoil_unknown_service(data: dict[str, Any]) -> None:
    data["services"][0]["service"] = "careops.ticketing.v1.TicketService"


def spoil_missing_service(data: dict[str, Any]) -> None:
    data["services"].pop()


def spoil_service_twice(data: dict[str, Any]) -> None:
    data["services"].append(data["services"][4])


def spoil_permission_twice(data: dict[str, Any]) -> None:
    rules_of(data, "QualityService")[1]["permission"] = "ticket.open"


def spoil_bad_permission_name(data: dict[str, Any]) -> None:
    rules_of(data, "QualityService")[0]["permission"] = "Submit Survey"


def spoil_no_roles(data: dict[str, Any]) -> None:
    rules_of(data, "GatewayService")[0]["roles"] = []


def spoil_role_twice(data: dict[str, Any]) -> None:
    rules_of(data, "GatewayService")[0]["roles"] = ["admin", "oncall", "admin"]


def spoil_unknown_key(data: dict[str, Any]) -> None:
    rules_of(data, "GatewayService")[0]["allow_all"] = True


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (
            spoil_unknown_role,
            r"services\[0\]\.rpcs\[0\]\.roles\[5\]: 'root' is not one of agent, senior_agent",
        ),
        (spoil_unknown_rpc, r"services\[0\]\.rpcs\[\d+\]\.rpc: TicketingService has no RPC 'Drop"),
        (spoil_rpc_twice, r"services\[1\]\.rpcs\[\d+\]\.rpc: RegisterCustomer listed 2 times"),
        (
            spoil_missing_rpc,
            r"services\[2\]\.rpcs: GetTeam missing \(every RPC needs a rule\)",
        ),
        (spoil_unknown_service, r"services\[0\]\.service: unknown service 'careops.ticketing"),
        (
            spoil_missing_service,
            r"services: careops.common.v1.ProjectionAdminService missing",
        ),
        (spoil_service_twice, r"services\[6\]\.service: service listed 2 times"),
        (spoil_permission_twice, r"services\[3\]\.rpcs\[1\]\.permission: ticket.open used 2 times"),
        (spoil_bad_permission_name, r"services\[3\]\.rpcs\[0\]\.permission: 'Submit Survey' is"),
        (spoil_no_roles, r"services\[4\]\.rpcs\[0\]\.roles: at least one role"),
        (spoil_role_twice, r"services\[4\]\.rpcs\[0\]\.roles\[2\]: admin listed 2 times"),
        (spoil_unknown_key, r"services\[4\]\.rpcs\[0\]\.allow_all: unknown key"),
    ],
)
def test_a_bad_permission_file_is_refused_with_a_located_error(
    tmp_path: Path, spoil: Any, expected: str
) -> None:
    data = packaged()
    spoil(data)
    with pytest.raises(ConfigError) as caught:
        load_data(tmp_path, data)
    assert str(caught.value).startswith(str(tmp_path / "permissions.yaml") + ": ")
    assert re.search(expected, str(caught.value)), str(caught.value)


def test_the_packaged_file_round_trips_through_the_loader(tmp_path: Path) -> None:
    assert load_data(tmp_path, packaged()).methods() == TABLE.methods()
