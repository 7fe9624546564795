"""What the Connect and gRPC-Web edges share: codecs, the 5-byte envelope, and the
google.rpc.Status every refusal and backend error becomes before each protocol shapes it.

The Connect protocol (https://connectrpc.com/docs/protocol) and gRPC-Web
(https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md) are implemented here directly:
the `connectrpc` package serves per-service ASGI/WSGI applications over generated, typed
service classes, while the gateway forwards raw protobuf bytes of every backend RPC inside its
aiohttp application, behind the same middlewares as `/v1/`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from gateway.backends import STATUS_DETAILS_KEY, Route, unavailable_message

ENVELOPE = struct.Struct(">BI")  # flags, length
COMPRESSED = 0x01


class WireError(Exception):
    """A request the protocol cannot take; carries the Status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status(code, message)


def status(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    """Returns the google.rpc.Status of `code` and `message`."""
    return status_pb2.Status(code=code.value[0], message=message)


def new_message(descriptor: Descriptor) -> Message:
    """Returns an empty message of `descriptor`'s type."""
    message: Message = message_factory.GetMessageClass(descriptor)()
    return message


@dataclass(frozen=True)
class Codec:
    """How message bodies are written: `proto` (binary) or `json` (the protobuf JSON mapping,
    zero values included, as on `/v1/`)."""

    name: str

    def decode(self, data: bytes, message: Message) -> None:
        """Parses `data` into `message`; raises WireError (INVALID_ARGUMENT) on bad input."""
        try:
            if self.name == "proto":
                message.ParseFromString(data)
            elif data.strip():
                json_format.Parse(data.decode("utf-8"), message)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
            kind = "protobuf" if self.name == "proto" else "JSON"
            full_name = message.DESCRIPTOR.full_name
            raise WireError(
                grpc.StatusCode.INVALID_ARGUMENT, f"the body is not a {full_name} in {kind}: {exc}"
            ) from exc

    def encode(self, message: Message) -> bytes:
        """Returns `message` in this codec."""
        if self.name == "proto":
            return message.SerializeToString()
        fields = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()

    def encode_raw(self, raw: bytes, descriptor: Descriptor) -> bytes:
        """Returns a backend's serialized `descriptor` message in this codec (proto: as is)."""
        if self.name == "proto":
            return raw
        message = new_message(descriptor)
        message.ParseFromString(raw)
        return self.encode(message)


PROTO = Codec("proto")
JSON = Codec("json")


def envelope(flags: int, data: bytes) -> bytes:
    """Returns `data` in a 5-byte-prefixed envelope."""
    return ENVELOPE.pack(flags, len(data)) + data


def single_message(body: bytes) -> bytes:
    """Returns the one message of an enveloped request body (the gateway forwards no client
    streaming); raises WireError for a malformed, compressed or multi-message body."""
    if len(body) < ENVELOPE.size:
        raise WireError(grpc.StatusCode.INVALID_ARGUMENT, "the body holds no enveloped message")
    flags, length = ENVELOPE.unpack_from(body)
    if flags & COMPRESSED:
        raise WireError(grpc.StatusCode.UNIMPLEMENTED, "compressed messages are not supported")
    if flags != 0:
        raise WireError(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected envelope flags {flags:#x}")
    if len(body) != ENVELOPE.size + length:
        raise WireError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the envelope announces {length} bytes but the body holds "
            f"{len(body) - ENVELOPE.size}; exactly one message is expected",
        )
    return body[ENVELOPE.size :]


def status_of_error(route: Route, error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """Returns a backend's status with its details unchanged (any type: both protocols carry
    details as bytes); a failed connection names the backend, as on `/v1/`."""
    named = unavailable_message(route, error)
    if named is not None:
        return status(grpc.StatusCode.UNAVAILABLE, named)
    result = status(error.code(), error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            with contextlib.suppress(DecodeError):  # unreadable details: code and message stand
                result.details.extend(status_pb2.Status.FromString(value).details)
    return result


def status_of_body(body: dict[str, Any]) -> status_pb2.Status:
    """Returns the Status of a google.rpc.Status JSON body (gateway.errors)."""
    result = status_pb2.Status()
    try:
        json_format.ParseDict(body, result)
    except json_format.ParseError:  # a detail of an unknown type: keep code and message
        result = status_pb2.Status(code=int(body.get("code", 2)), message=body.get("message", ""))
    return result


def status_of_response(response: web.Response) -> status_pb2.Status:
    """Returns the Status of one of the gateway's JSON error responses (its shared helpers
    answer so: auth refusals, rate limits, bad headers)."""
    assert isinstance(response.body, bytes)
    return status_of_body(json.loads(response.body))


def code_of(value: status_pb2.Status) -> grpc.StatusCode:
    """Returns the gRPC code of a Status (UNKNOWN for a number gRPC does not have)."""
    return next((c for c in grpc.StatusCode if c.value[0] == value.code), grpc.StatusCode.UNKNOWN)


def b64(data: bytes) -> str:
    """Returns standard base64 without padding (what both protocols write for binary values)."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


# Response headers of a refusal worth keeping in any protocol: the challenge and the back-off.
KEPT_HEADERS: Sequence[str] = ("WWW-Authenticate", "Retry-After")


def kept_headers(response: web.StreamResponse) -> dict[str, str]:
    """Returns the headers of `response` a protocol-shaped refusal keeps."""
    return {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
