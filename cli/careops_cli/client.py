"""gRPC plumbing shared by the CLI's command groups: every RPC goes to the gateway, one address,
presenting a bearer token (CAREOPS_TOKEN, else the one `careops login` stored in the data dir).
The gateway verifies it and sets the actor of what the call causes."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import typer
from careops_platform import registry
from careops_platform.local_issuer import TOKEN_FILE, stored_token
from careops_platform.registry import BACKEND_METADATA
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console

from careops_cli.platform import grpc_port

console = Console()
errors = Console(stderr=True)

GATEWAY_ADDR_ENV = "CAREOPS_GATEWAY_ADDR"
GATEWAY_TLS_CA_ENV = "CAREOPS_GATEWAY_TLS_CA_FILE"
TOKEN_ENV = "CAREOPS_TOKEN"
DATA_DIR_ENV = "CAREOPS_DATA_DIR"
DEFAULT_DATA_DIR = "var"  # as the `--data-dir` of `careops up` / `login` / `token issue`
LOGIN_HINT = "run `careops login` (or set CAREOPS_TOKEN, e.g. from `careops token issue`)"


def report(text: str) -> None:
    """Prints an error on stderr as it is: no markup read into it, long lines not cut."""
    errors.print(text, style="red", markup=False, highlight=False, soft_wrap=True)


def gateway_address() -> str:
    """Returns host:port of the gateway: CAREOPS_GATEWAY_ADDR, else this host at the gateway's
    gRPC port (CAREOPS_GATEWAY_GRPC_PORT or the registry's default)."""
    default = f"127.0.0.1:{grpc_port(registry.service('gateway'))}"
    return os.environ.get(GATEWAY_ADDR_ENV) or default


def data_dir() -> Path:
    """Returns the data dir `careops login` stores its token in: CAREOPS_DATA_DIR or `var`."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def bearer_token() -> str:
    """Returns the token to present: CAREOPS_TOKEN, else the stored login; exits 1 with the
    hint when there is neither."""
    token = os.environ.get(TOKEN_ENV, "").strip() or stored_token(data_dir())
    if not token:
        where = data_dir() / TOKEN_FILE
        report(f"not logged in: no {TOKEN_ENV} and no token in {where}; {LOGIN_HINT}")
        raise typer.Exit(1)
    return token


def _credentials() -> grpc.ChannelCredentials | None:
    """Returns TLS credentials trusting CAREOPS_GATEWAY_TLS_CA_FILE (PEM); None: plaintext."""
    path = os.environ.get(GATEWAY_TLS_CA_ENV, "")
    if not path:
        return None
    try:
        return grpc.ssl_channel_credentials(root_certificates=Path(path).read_bytes())
    except OSError as exc:
        report(f"cannot read {GATEWAY_TLS_CA_ENV} {path}: {exc.strerror}")
        raise typer.Exit(1) from None


class _Details(NamedTuple):
    """grpc.ClientCallDetails with the token added (the class itself has no constructor)."""

    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Presents `authorization: Bearer <token>` on every call, unary and streaming alike."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> _Details:
        return _Details(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._header],
            details.credentials,
            details.wait_for_ready,
            details.compression,  # type: ignore[attr-defined]
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


@contextmanager
def channel() -> Iterator[grpc.Channel]:
    """Opens a channel to the gateway that presents the token on every call (TLS when
    CAREOPS_GATEWAY_TLS_CA_FILE names the CA); exits 1 when there is no token."""
    token = bearer_token()
    credentials = _credentials()
    address = gateway_address()
    opened = (
        grpc.secure_channel(address, credentials)
        if credentials is not None
        else grpc.insecure_channel(address)
    )
    with opened:
        yield grpc.intercept_channel(opened, _Bearer(token))


def metadata(key: str = "", backend: str = "") -> list[tuple[str, str]]:
    """Returns a call's metadata: its idempotency key and, for the projection admin RPCs, the
    service they are for."""
    pairs = [("idempotency-key", key or uuid.uuid4().hex)]
    if backend:
        pairs.append((BACKEND_METADATA, backend))
    return pairs


def failure(exc: grpc.RpcError) -> str:
    """Returns how a failed call is shown: its status and message, and for UNAUTHENTICATED
    (no, an expired or a foreign token) how to get a valid one."""
    code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
    text = f"{code.name}: {exc.details()}"  # type: ignore[attr-defined]
    if code is grpc.StatusCode.UNAUTHENTICATED:
        text += f"\n{LOGIN_HINT}"
    return text


def call(method: Callable[..., Any], request: Message, key: str = "", backend: str = "") -> Any:
    """Calls a unary RPC; prints the status and exits 1 on failure."""
    try:
        return method(request, metadata=metadata(key, backend), timeout=30)
    except grpc.RpcError as exc:
        report(failure(exc))
        raise typer.Exit(1) from None


def print_message(message: Message) -> None:
    """Prints a protobuf message as JSON (field names as in the proto)."""
    console.print_json(json.dumps(MessageToDict(message, preserving_proto_field_name=True)))
