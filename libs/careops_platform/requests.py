"""Per-request context for command handlers: command ids from `idempotency-key`, and the actor."""

from __future__ import annotations

import contextvars
import hashlib
import uuid

IDEMPOTENCY_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("idempotency_key", default="")
ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("actor", default="anonymous")


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
