"""Authorisation as data: one table from every RPC of every service to the roles allowed.

The table is `permissions.yaml` (next to this module, or a file given at start); it is validated
against the services' generated descriptors, so an unknown role, service or RPC, an RPC listed
twice and an RPC left out are all errors at start, located in the file. `authorize` checks a
caller's roles against it and raises PermissionDenied naming the permission. Rules that need the
data (whose ticket, whose page) are not here: see docs/permissions.md.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from careops.common.v1 import admin_pb2
from careops.customer.v1 import customer_pb2
from careops.gateway.v1 import gateway_pb2
from careops.incident.v1 import incident_pb2
from careops.quality.v1 import quality_pb2
from careops.ticketing.v1 import ticketing_pb2
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from pydantic import PlainValidator
from pydantic import model_validator as model_check

from careops_platform.config_files import ConfigModel, FieldError, Text, load, one_of
from careops_platform.errors import MAX_FIELD_BYTES, PermissionDenied, clip

PACKAGE = "careops_platform"
DEFAULT_FILE = "permissions.yaml"

# The generated files whose services the table must cover, exactly: a new service's proto is
# one more line here (the table test also walks every generated module for services).
SERVICE_FILES: tuple[FileDescriptor, ...] = (
    ticketing_pb2.DESCRIPTOR,
    customer_pb2.DESCRIPTOR,
    incident_pb2.DESCRIPTOR,
    quality_pb2.DESCRIPTOR,
    gateway_pb2.DESCRIPTOR,
    admin_pb2.DESCRIPTOR,
)

_PERMISSION_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class Role(StrEnum):
    """The roles a principal may hold; tokens and API keys carry them."""

    AGENT = "agent"
    SENIOR_AGENT = "senior_agent"
    SUPERVISOR = "supervisor"
    ONCALL = "oncall"
    ADMIN = "admin"
    INTEGRATION = "integration"


def known_services() -> dict[str, ServiceDescriptor]:
    """Returns every service the table covers, by full name."""
    return {
        service.full_name: service
        for file in SERVICE_FILES
        for service in file.services_by_name.values()
    }


def method_path(service: str, rpc: str) -> str:
    """Returns the full gRPC method name: `/careops.ticketing.v1.TicketingService/OpenTicket`."""
    return f"/{service}/{rpc}"


def _permission_name(value: Any) -> str:
    """Returns a permission name such as `ticket.open` (lower-case words joined by dots)."""
    if not isinstance(value, str) or not _PERMISSION_NAME.match(value):
        raise ValueError(f"{value!r} is not a permission name such as ticket.open")
    return value


class RpcRule(ConfigModel):
    """One RPC: its permission name and the roles allowed to call it (at least one)."""

    rpc: Text
    permission: Annotated[str, PlainValidator(_permission_name)]
    roles: tuple[Annotated[Role, one_of(Role)], ...]

    @model_check(mode="after")
    def _roles_once(self) -> RpcRule:
        """Refuses an empty role list and a role listed twice."""
        if not self.roles:
            raise FieldError("roles", "at least one role (an RPC nobody may call is removed)")
        for index, count in _repeats(self.roles):
            raise FieldError(("roles", index), f"{self.roles[index].value} listed {count} times")
        return self


class ServiceRules(ConfigModel):
    """The rules of one service, named by its full proto name."""

    service: Text
    rpcs: tuple[RpcRule, ...]


class PermissionFile(ConfigModel):
    """The permission file: every RPC of every known service, each exactly once."""

    services: tuple[ServiceRules, ...]

    @model_check(mode="after")
    def _covers_every_rpc(self) -> PermissionFile:
        """Refuses unknown, repeated and missing services and RPCs, and repeated names."""
        known = known_services()
        for index, count in _repeats(entry.service for entry in self.services):
            raise FieldError(("services", index, "service"), f"service listed {count} times")
        for index, entry in enumerate(self.services):
            _check_service(entry, known.get(entry.service), ("services", index))
        _check_permission_names(self.services)
        listed = {entry.service for entry in self.services}
        missing = sorted(name for name in known if name not in listed)
        if missing:
            raise FieldError("services", f"{', '.join(missing)} missing (every RPC needs a rule)")
        return self


def _repeats(values: Iterable[Any]) -> Iterable[tuple[int, int]]:
    """Returns, for every value occurring more than once, the index of its second occurrence
    and how often it occurs."""
    values = list(values)
    counts = Counter(values)
    seen: set[Any] = set()
    reported: set[Any] = set()
    for index, value in enumerate(values):
        if value in seen and value not in reported:
            reported.add(value)
            yield index, counts[value]
        seen.add(value)


def _check_service(
    entry: ServiceRules, service: ServiceDescriptor | None, at: tuple[str | int, ...]
) -> None:
    """Raises FieldError (located below `at`) for an unknown service, or an RPC of it that is
    unknown, listed twice or missing."""
    if service is None:
        raise FieldError((*at, "service"), f"unknown service {entry.service!r}")
    rpcs = [rule.rpc for rule in entry.rpcs]
    for index, rpc in enumerate(rpcs):
        if rpc not in service.methods_by_name:
            raise FieldError((*at, "rpcs", index, "rpc"), f"{service.name} has no RPC {rpc!r}")
    for index, count in _repeats(rpcs):
        raise FieldError((*at, "rpcs", index, "rpc"), f"{rpcs[index]} listed {count} times")
    missing = [method.name for method in service.methods if method.name not in rpcs]
    if missing:
        raise FieldError((*at, "rpcs"), f"{', '.join(missing)} missing (every RPC needs a rule)")


def _check_permission_names(services: Iterable[ServiceRules]) -> None:
    """Raises FieldError at the second use of a permission name (each names one RPC)."""
    places = [
        (("services", i, "rpcs", j, "permission"), rule.permission)
        for i, entry in enumerate(services)
        for j, rule in enumerate(entry.rpcs)
    ]
    for at, count in _repeats(name for _, name in places):
        path, name = places[at]
        raise FieldError(path, f"{name} used {count} times")


@dataclass(frozen=True)
class Permission:
    """What calling one RPC takes: the permission's name and the roles that have it."""

    name: str
    method: str
    roles: frozenset[Role]

    def granted_to(self) -> str:
        """Returns the roles that have the permission, in the table's role order."""
        return ", ".join(role.value for role in Role if role in self.roles)


class PermissionTable:
    """Every RPC's permission, by full method name; unknown methods are denied."""

    def __init__(self, permissions: Mapping[str, Permission]) -> None:
        self._permissions = dict(permissions)

    @classmethod
    def of(cls, spec: PermissionFile) -> PermissionTable:
        """Returns the table of a validated permission file."""
        return cls(
            {
                method_path(entry.service, rule.rpc): Permission(
                    rule.permission, method_path(entry.service, rule.rpc), frozenset(rule.roles)
                )
                for entry in spec.services
                for rule in entry.rpcs
            }
        )

    def methods(self) -> frozenset[str]:
        """Returns every full method name the table covers."""
        return frozenset(self._permissions)

    def permission(self, method: str) -> Permission | None:
        """Returns the permission calling `method` takes; None for a method not in the table."""
        return self._permissions.get(method)

    def allows(self, roles: Iterable[str], method: str) -> bool:
        """Returns whether a principal with `roles` may call `method` (unknown roles grant
        nothing; an unknown method is allowed to nobody)."""
        permission = self._permissions.get(method)
        held = set(roles)
        return permission is not None and any(role.value in held for role in permission.roles)

    def authorize(self, roles: Iterable[str], method: str) -> None:
        """Raises PermissionDenied naming the permission and the roles that have it unless a
        principal with `roles` may call `method`."""
        roles = tuple(roles)
        if self.allows(roles, method):
            return
        held = clip(", ".join(sorted(set(roles))) or "none", MAX_FIELD_BYTES)
        permission = self._permissions.get(method)
        if permission is None:
            raise PermissionDenied(
                f"{clip(method, MAX_FIELD_BYTES)} is in no permission rule; nobody may call it",
                permission="",
            )
        raise PermissionDenied(
            f"permission {permission.name} is required (granted to {permission.granted_to()}); "
            f"the caller's roles: {held}",
            permission=permission.name,
        )


def load_permissions(path: str | None = None) -> PermissionTable:
    """Returns the permission table of `path` (None: the packaged permissions.yaml), validated;
    raises ConfigError with located messages otherwise."""
    return PermissionTable.of(load(PermissionFile, path, package=PACKAGE, default=DEFAULT_FILE))


@functools.cache
def default_table() -> PermissionTable:
    """Returns the packaged permission table, loaded once."""
    return load_permissions()


def authorize(roles: Iterable[str], method: str) -> None:
    """Raises PermissionDenied unless `roles` may call the full gRPC `method` by the packaged
    table (`/careops.ticketing.v1.TicketingService/OpenTicket`)."""
    default_table().authorize(roles, method)


def markdown_table(table: PermissionTable) -> str:
    """Returns the table as Markdown, one row per RPC and a column per role (docs/permissions.md
    holds it; a test checks the two agree)."""
    header = "| RPC | permission | " + " | ".join(role.value for role in Role) + " |"
    rule = "|---|---|" + "---|" * len(Role)
    rows = [header, rule]
    for method in _in_file_order(table):
        permission = table.permission(method)
        assert permission is not None  # _in_file_order lists the table's own methods
        marks = " | ".join("✓" if role in permission.roles else "" for role in Role)
        service, rpc = method.strip("/").split("/")
        rows.append(f"| {service.rsplit('.', 1)[-1]}/{rpc} | `{permission.name}` | {marks} |")
    return "\n".join(rows) + "\n"


def _in_file_order(table: PermissionTable) -> list[str]:
    """Returns the table's methods in the order of SERVICE_FILES and their protos."""
    order = [
        method_path(service.full_name, method.name)
        for service in known_services().values()
        for method in service.methods
    ]
    return [method for method in order if method in table.methods()]
