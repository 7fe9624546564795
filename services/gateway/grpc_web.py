"""gRPC-Web's wire format (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md):
enveloped messages, then a trailers frame (flag 0x80) with `grpc-status`, `grpc-message` and
`grpc-status-details-bin`; an error before any message is a trailers-only reply (the status in
the response headers). `application/grpc-web-text` is the same in base64."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from aiohttp import web
from google.rpc import status_pb2

from gateway.wire import JSON, PROTO, Codec, WireError, b64, envelope, single_message

TRAILERS = 0x80
TYPES = {
    "application/grpc-web": (PROTO, False),
    "application/grpc-web+proto": (PROTO, False),
    "application/grpc-web+json": (JSON, False),
    "application/grpc-web-text": (PROTO, True),
    "application/grpc-web-text+proto": (PROTO, True),
}
# A -text body may be several base64 chunks, each with its own padding.
BASE64_CHUNK = re.compile(rb"[^=]+=*")


def percent_encoded(message: str) -> str:
    """Returns `grpc-message` as gRPC writes it: UTF-8, percent-encoding all but printable
    ASCII other than '%'."""
    return "".join(
        chr(byte) if 0x20 <= byte <= 0x7E and byte != 0x25 else f"%{byte:02X}"
        for byte in message.encode("utf-8")
    )


def status_headers(status: status_pb2.Status) -> dict[str, str]:
    """Returns the trailers of `status` (the details as the serialized Status, in base64)."""
    headers = {"grpc-status": str(status.code), "grpc-message": percent_encoded(status.message)}
    if status.details:
        headers["grpc-status-details-bin"] = b64(status.SerializeToString())
    return headers


@dataclass(frozen=True)
class GrpcWeb:
    """A gRPC-Web call of either shape: unary is a stream of one message."""

    codec: Codec
    text: bool
    label: str = "grpc-web"
    streaming: bool = True

    @property
    def content_type(self) -> str:
        kind = "grpc-web-text" if self.text else "grpc-web"
        return f"application/{kind}+{self.codec.name}"

    def request_message(self, body: bytes) -> bytes:
        if self.text:
            try:
                body = b"".join(base64.b64decode(c) for c in BASE64_CHUNK.findall(body.strip()))
            except (binascii.Error, ValueError) as exc:
                raise WireError(grpc.StatusCode.INVALID_ARGUMENT, f"bad base64: {exc}") from exc
        return single_message(body)

    def _encoded(self, data: bytes) -> bytes:
        return base64.b64encode(data) if self.text else data

    @staticmethod
    def _trailers(status: status_pb2.Status | None) -> bytes:
        trailers = status_headers(status or status_pb2.Status())
        block = "".join(f"{name}: {value}\r\n" for name, value in trailers.items())
        return envelope(TRAILERS, block.encode("ascii"))

    def frame(self, data: bytes) -> bytes:
        """Returns one message of a stream (in -text: base64 of its own, padded)."""
        return self._encoded(envelope(0, data))

    def end(self, status: status_pb2.Status | None) -> bytes:
        """Returns the trailers frame ending a stream."""
        return self._encoded(self._trailers(status))

    def reply(self, data: bytes) -> web.Response:
        """Returns a unary call's reply: the message and the trailers (in -text: one base64
        text, so any decoder reads it)."""
        body = self._encoded(envelope(0, data) + self._trailers(None))
        return web.Response(body=body, content_type=self.content_type)

    def refusal(self, status: status_pb2.Status, headers: Mapping[str, str]) -> web.Response:
        return web.Response(
            content_type=self.content_type, headers={**headers, **status_headers(status)}
        )
