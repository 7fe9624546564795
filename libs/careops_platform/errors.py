"""Errors every service raises and the one way they map to gRPC statuses.

Edges and applications raise these ServiceErrors for refusals of their own (a bad request field,
an unknown team, a contact already registered); domain errors stay the domain's and are mapped by
their class through the service's `error_map` (`service_error`). The server's interceptors are
the only place either becomes a status: no edge catches and translates errors itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import grpc

# Echoed text is clipped so a status's trailers stay under 4 KiB, half of gRPC's 8 KiB soft
# metadata limit (above it calls fail at random with RESOURCE_EXHAUSTED; 16 KiB always): the
# message travels twice, percent-encoded in grpc-message and base64 in grpc-status-details-bin.
MAX_MESSAGE_BYTES = 400
MAX_FIELD_BYTES = 100
MAX_DESCRIPTION_BYTES = 160
MAX_VIOLATIONS = 6

ErrorMap = Mapping[type[Exception], grpc.StatusCode]


def clip(text: str, limit: int) -> str:
    """Returns `text` cut to at most `limit` UTF-8 bytes (on a character boundary, marked …)."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode("utf-8", "ignore") + "…"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field and why, for google.rpc.BadRequest."""

    field: str
    description: str

    @classmethod
    def of(cls, violation: FieldViolation | tuple[str, str]) -> FieldViolation:
        """Returns a violation given as itself or as a domain `(field, description)` pair."""
        if isinstance(violation, FieldViolation):
            return violation
        field, description = violation
        return cls(str(field), str(description))


class ServiceError(Exception):
    """An error with a definite gRPC status and a message a person understands."""

    code = grpc.StatusCode.INTERNAL

    def __init__(
        self,
        message: str,
        violations: Iterable[FieldViolation | tuple[str, str]] = (),
        *,
        code: grpc.StatusCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.violations = tuple(FieldViolation.of(violation) for violation in violations)
        if code is not None:
            self.code = code


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(ServiceError):
    """The call carries no verified identity."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    """The caller's roles lack the permission the call takes; `permission` names it."""

    code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, message: str, *, permission: str = "") -> None:
        super().__init__(message)
        self.permission = permission


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


def service_error(exc: Exception, error_map: ErrorMap) -> ServiceError | None:
    """Returns `exc` as a ServiceError: itself, or by the most specific class `error_map` names
    (its `violations`, domain pairs or FieldViolations, kept); None when nothing maps it."""
    if isinstance(exc, ServiceError):
        return exc
    for cls in type(exc).__mro__:
        code = error_map.get(cls)
        if code is not None:
            return ServiceError(str(exc), getattr(exc, "violations", ()), code=code)
    return None
