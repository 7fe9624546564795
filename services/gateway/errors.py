"""HTTP/JSON error bodies: a `google.rpc.Status` in the protobuf JSON mapping.

`{"code": <gRPC code number>, "message": "…", "details": [{"@type": "type.googleapis.com/…", …}]}`
(camelCase, e.g. a BadRequest's `fieldViolations`), sent with the HTTP status of
google/rpc/code.proto (FAILED_PRECONDITION is 400, as there).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from gateway.backends import STATUS_DETAILS_KEY, Route, unavailable_message

log = logging.getLogger(__name__)

# google/rpc/code.proto's HTTP mapping.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
CODE_NUMBERS: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def _status_json(status: status_pb2.Status) -> dict[str, Any]:
    """Returns `status` in the JSON mapping with `message` and `details` always present."""
    return json_format.MessageToDict(status, always_print_fields_with_no_presence=True)


def error_body(
    code: grpc.StatusCode, message: str, violations: Sequence[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """Returns the Status JSON of `code` and `message`, with a BadRequest detail listing
    `violations` (`{"field", "description"}`) when there are any."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v["field"], description=v["description"]
                )
                for v in violations
            ]
        )
        status.details.add().Pack(bad_request)
    return _status_json(status)


def _details(trailers: Sequence[tuple[str, str | bytes]]) -> list[dict[str, Any]]:
    """Returns the JSON of every detail of the google.rpc.Status in a call's trailers whose type
    the gateway knows (the google.rpc error details); others are left out, as JSON cannot show
    a message without its descriptor."""
    details: list[dict[str, Any]] = []
    for key, value in trailers:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            continue
        for detail in status.details:
            try:
                details.append(json_format.MessageToDict(detail))
            except (TypeError, json_format.Error):
                log.debug("detail of unknown type left out", extra={"type": detail.type_url})
    return details


def error_of(route: Route, error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """Returns the Status JSON for a backend's status: its code, message and details unchanged,
    exactly as the gRPC edge passes them on."""
    named = unavailable_message(route, error)
    if named is not None:
        return error_body(grpc.StatusCode.UNAVAILABLE, named)
    body = error_body(error.code(), error.details() or "")
    body["details"] = _details(list(error.trailing_metadata() or ()))
    return body


def http_status(body: Mapping[str, Any]) -> int:
    """Returns the HTTP status of a Status JSON's code (500 for a number gRPC does not have)."""
    code = CODE_NUMBERS.get(int(body.get("code", 2)), grpc.StatusCode.UNKNOWN)
    return HTTP_STATUS[code]


def error_response(
    body: dict[str, Any], status: int | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Returns the JSON response of a Status body; `status` when HTTP's own (405, 413) differs
    from the code's mapping."""
    return web.json_response(
        body, status=status if status is not None else http_status(body), headers=headers
    )
