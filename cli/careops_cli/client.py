"""gRPC plumbing shared by the CLI's command groups."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console

from careops_cli.platform import SERVICES, grpc_port

console = Console()
errors = Console(stderr=True)


def address(service: str) -> str:
    """Returns host:port of a service: CAREOPS_<SERVICE>_ADDR or the local default port."""
    spec = next(spec for spec in SERVICES if spec.name == service)
    return os.environ.get(spec.addr_env, f"127.0.0.1:{grpc_port(spec)}")


@contextmanager
def channel(service: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address(service)) as opened:
        yield opened


def metadata(key: str = "") -> list[tuple[str, str]]:
    return [
        ("careops-actor", f"cli:{os.environ.get('USER', 'unknown')}"),
        ("idempotency-key", key or uuid.uuid4().hex),
    ]


def call(method: Callable[..., Any], request: Message, key: str = "") -> Any:
    """Calls a unary RPC; prints the status and exits 1 on failure."""
    try:
        return method(request, metadata=metadata(key), timeout=30)
    except grpc.RpcError as exc:
        errors.print(f"[red]{exc.code().name}[/]: {exc.details()}")  # type: ignore[attr-defined]
        raise typer.Exit(1) from None


def print_message(message: Message) -> None:
    """Prints a protobuf message as JSON (field names as in the proto)."""
    console.print_json(json.dumps(MessageToDict(message, preserving_proto_field_name=True)))
