"""The Connect protocol's wire format (https://connectrpc.com/docs/protocol): unary calls with
`application/json` or `application/proto` bodies and JSON errors, server streams as
`application/connect+json` / `application/connect+proto` envelopes ending in an end-stream
message (flag 0x02) that carries the error, if any."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.rpc import status_pb2

from gateway.errors import HTTP_STATUS
from gateway.wire import JSON, PROTO, Codec, WireError, b64, code_of, envelope, single_message

PROTOCOL_VERSION_HEADER = "Connect-Protocol-Version"
PROTOCOL_VERSION = "1"
END_STREAM = 0x02
UNARY_TYPES = {"application/json": JSON, "application/proto": PROTO}
STREAM_TYPES = {"application/connect+json": JSON, "application/connect+proto": PROTO}


def code_name(code: grpc.StatusCode) -> str:
    """Returns Connect's name of a gRPC code (`invalid_argument`; CANCELLED is `canceled`)."""
    return "canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()


def _detail(detail: Any) -> dict[str, Any]:
    """Returns one detail as Connect writes it: the bare type name, the message's bytes in
    base64, and its JSON as `debug` when the gateway knows the type."""
    written: dict[str, Any] = {
        "type": detail.type_url.rpartition("/")[2],
        "value": b64(detail.value),
    }
    try:
        debug = json_format.MessageToDict(detail)
    except (TypeError, json_format.Error):
        return written
    debug.pop("@type", None)
    written["debug"] = debug
    return written


def error_json(status: status_pb2.Status) -> dict[str, Any]:
    """Returns Connect's error object for `status`."""
    error: dict[str, Any] = {"code": code_name(code_of(status))}
    if status.message:
        error["message"] = status.message
    if status.details:
        error["details"] = [_detail(detail) for detail in status.details]
    return error


def check_version(headers: Mapping[str, str]) -> None:
    """Raises WireError for a Connect protocol version other than 1 (absent is accepted)."""
    version = headers.get(PROTOCOL_VERSION_HEADER)
    if version is not None and version.strip() != PROTOCOL_VERSION:
        raise WireError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{PROTOCOL_VERSION_HEADER} must be {PROTOCOL_VERSION}, not {version!r}",
        )


@dataclass(frozen=True)
class ConnectUnary:
    """A unary Connect call: the body is the bare message; an error is JSON with the HTTP
    status of its code (Connect's table is google.rpc's)."""

    codec: Codec
    label: str = "connect"
    streaming: bool = False

    @property
    def content_type(self) -> str:
        return f"application/{self.codec.name}"

    def request_message(self, body: bytes) -> bytes:
        return body

    def reply(self, data: bytes) -> web.Response:
        return web.Response(body=data, content_type=self.content_type)

    def refusal(self, status: status_pb2.Status, headers: Mapping[str, str]) -> web.Response:
        return web.Response(
            text=json.dumps(error_json(status), ensure_ascii=False),
            status=HTTP_STATUS.get(code_of(status), 500),
            content_type="application/json",
            headers=headers,
        )


@dataclass(frozen=True)
class ConnectStream:
    """A server-streaming Connect call: enveloped messages, then the end-stream message; HTTP
    200 even for an error, which the end-stream message carries."""

    codec: Codec
    label: str = "connect"
    streaming: bool = True

    @property
    def content_type(self) -> str:
        return f"application/connect+{self.codec.name}"

    def request_message(self, body: bytes) -> bytes:
        return single_message(body)

    def frame(self, data: bytes) -> bytes:
        return envelope(0, data)

    def reply(self, data: bytes) -> web.Response:
        return web.Response(body=self.frame(data) + self.end(None), content_type=self.content_type)

    def end(self, status: status_pb2.Status | None) -> bytes:
        end: dict[str, Any] = {} if status is None else {"error": error_json(status)}
        return envelope(END_STREAM, json.dumps(end, ensure_ascii=False).encode())

    def refusal(self, status: status_pb2.Status, headers: Mapping[str, str]) -> web.Response:
        return web.Response(body=self.end(status), content_type=self.content_type, headers=headers)
