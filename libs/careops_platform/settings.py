"""Validated settings from CAREOPS_* environment variables, one object per process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

from careops_eventstore.reactions import ACK_WAIT_SECONDS
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from careops_platform.internal_identity import InternalVerifier
from careops_platform.local_issuer import load_public_key

T = TypeVar("T", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """Settings every service reads; services subclass it with their own fields and defaults."""

    model_config = SettingsConfigDict(
        env_prefix="CAREOPS_", extra="ignore", frozen=True, populate_by_name=True
    )

    nats_url: str = Field(
        "nats://127.0.0.1:14222", description="NATS server(s) with JetStream, comma-separated"
    )
    database_url: str = Field("", description="SQLAlchemy URL; empty: SQLite under data_dir")
    data_dir: str = Field("var", description="Directory for embedded data (SQLite, NATS)")
    grpc_host: str = Field("127.0.0.1", description="gRPC bind address")
    grpc_port: int = Field(0, ge=0, le=65535, description="gRPC port")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port")
    stream_replicas: int = Field(1, ge=1, le=5, description="JetStream stream replicas")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    otel_endpoint: str = Field("", description="OTLP gRPC endpoint; empty disables export")
    append_timeout_seconds: float = Field(2.0, gt=0, le=60)
    read_wait_seconds: float = Field(5.0, gt=0, le=60, description="Max wait for min_sequence")
    shutdown_grace_seconds: float = Field(5.0, ge=0, le=120)
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="the process's event loop: uvloop (libuv; 6-7 % less CPU per command, "
        "docs/benchmarks.md §16, session 29) or the standard library's asyncio",
    )
    role: Literal["all", "api", "worker"] = Field(
        "all",
        description="all: one process does everything; api: gRPC commands and queries only; "
        "worker: projections, reactions and timers (health and /metrics only); `--role`",
    )
    worker_parts: str = Field(
        "projections,reactions,background",
        pattern=r"^(projections|reactions|background)(,(projections|reactions|background))*$",
        description="what a worker (and `all`) runs, comma-separated: projections, "
        "reactions, background (timers, schedules); e.g. a pager-only worker runs "
        "`reactions,background` beside one running `projections`",
    )
    lease_seconds: float = Field(
        4.0,
        ge=0.5,
        le=60,
        description="worker role: a projection group's lease expires this long after its "
        "owner's last renewal (kill -9), then another worker takes the group over",
    )
    reaction_ack_wait_seconds: float = Field(
        ACK_WAIT_SECONDS,
        gt=0,
        le=60,
        description="a reaction's message neither acknowledged nor kept in progress (its "
        "process died) is redelivered after this; tests shorten it",
    )
    internal_verify_key_file: str = Field(
        "",
        description="PEM public key of the gateway's internal identity tokens (services); "
        "empty: the embedded key in <data dir>/auth/internal-signing-key.pem",
    )

    @field_validator("internal_verify_key_file")
    @classmethod
    def _verify_key_readable(cls, value: str) -> str:
        # At start, not at the first call: a bad file stops the process with its name.
        if value:
            load_public_key(Path(value))
        return value

    def internal_verifier(self) -> InternalVerifier:
        """Returns the verifier of the gateway's internal identity: the configured public
        key, else the embedded key pair's (created in the data dir if no process has yet)."""
        if self.internal_verify_key_file:
            return InternalVerifier(load_public_key(Path(self.internal_verify_key_file)))
        return InternalVerifier.embedded(self.data_dir)


def env_name(cls: type[BaseSettings], field: str) -> str:
    """Returns the environment variable that sets `field`."""
    if field.startswith("CAREOPS_"):
        return field
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        for choice in alias.choices:
            if isinstance(choice, str) and choice.startswith("CAREOPS_"):
                return choice
    return "CAREOPS_" + field.upper()


def load_settings(cls: type[T], **overrides: Any) -> T:
    """Returns validated settings or exits with a message naming each bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [f"invalid configuration for {cls.__name__}:"]
        for error in exc.errors():
            name = env_name(cls, str(error["loc"][0]) if error["loc"] else "")
            lines.append(f"  {name}: {error['msg']} (got {error.get('input')!r})")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
