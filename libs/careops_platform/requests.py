"""Per-request context for command handlers: command ids from `idempotency-key`, the actor,
and request fields every API reads the same way."""

from __future__ import annotations

import contextvars
import hashlib
import re
import uuid
from datetime import UTC, datetime

from google.protobuf.message import Message

from careops_platform.errors import FieldViolation, InvalidArgument

IDEMPOTENCY_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("idempotency_key", default="")
ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("actor", default="anonymous")
# The one rule for every id that becomes a token of a NATS subject (careops.<ctx>.<agg>.<id>):
# no '.', '*', '>' or whitespace (they would split or wildcard the subject), and short.
AGGREGATE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def command_id() -> str:
    """Returns the command id: a digest of method + idempotency-key if sent, else a new UUID."""
    key = IDEMPOTENCY_KEY.get()
    if key:
        return hashlib.sha256(key.encode()).hexdigest()[:32]
    return uuid.uuid4().hex


def derived_id(prefix: str) -> str:
    """Returns a new aggregate id; with an idempotency-key, the same id for every retry."""
    key = IDEMPOTENCY_KEY.get()
    if key:
        digest = hashlib.sha256(("id:" + key).encode()).hexdigest()[:20]
        return f"{prefix}-{digest}"
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def actor() -> str:
    """Returns who issued the current request (`careops-actor` metadata)."""
    return ACTOR.get()


def aggregate_id(value: str, field: str, *, kind: str = "") -> str:
    """Returns `value` when it can be an aggregate id (one subject token); INVALID_ARGUMENT
    naming `field` (never echoing the value) when it is empty or not one."""
    if not value:
        raise InvalidArgument(f"{field} is required", [FieldViolation(field, "must not be empty")])
    if not AGGREGATE_ID.fullmatch(value):
        what = f"{kind} id" if kind else "id"
        raise InvalidArgument(
            f"{field} is not a valid {what}",
            [FieldViolation(field, "letters, digits, '-' and '_' only, at most 64")],
        )
    return value


def timestamp_field(message: Message, field: str, *, path: str = "") -> datetime | None:
    """Returns the Timestamp `field` of `message` as aware UTC, None when unset;
    INVALID_ARGUMENT naming `path` (default: the field) when it is out of range."""
    if not message.HasField(field):
        return None
    try:
        value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    except ValueError as exc:
        name = path or field
        raise InvalidArgument(
            f"{name} is not a valid time: {exc}",
            [FieldViolation(name, "must be a valid time between years 1 and 9999")],
        ) from exc
    return value
