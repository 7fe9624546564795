"""API keys for machine clients: `cok_<prefix>_<secret>`, presented as a bearer credential.

The prefix finds the key; only the SHA-256 of the secret is stored (the secret is 256 random
bits, so a fast hash is enough: there is nothing to brute-force). Keys live in one JSON file in
the data dir (mode 0600), written atomically under a lock by `careops apikey create/revoke`;
the gateway re-reads it when it changes, so a revocation takes effect at the next call.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from careops_platform.identity import AuthError, Principal, unknown_roles
from careops_platform.local_issuer import write_private

API_KEY_PREFIX = "cok_"
KEYS_FILE = Path("auth") / "api-keys.json"


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: never its secret, only the secret's hash."""

    prefix: str
    secret_sha256: str
    subject: str
    roles: tuple[str, ...]
    name: str
    created_at: str
    expires_at: str = ""
    revoked_at: str = ""

    def state(self, now: datetime) -> str:
        """Returns `active`, `expired` or `revoked`."""
        if self.revoked_at:
            return "revoked"
        if self.expires_at and datetime.fromisoformat(self.expires_at) <= now:
            return "expired"
        return "active"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


class ApiKeyStore:
    """The data dir's API keys."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = {}

    @classmethod
    def of(cls, data_dir: Path | str) -> ApiKeyStore:
        return cls(Path(data_dir) / KEYS_FILE)

    def _read(self) -> dict[str, ApiKey]:
        """Returns the keys on disk, re-reading the file only when it changed."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._seen, self._keys = None, {}
            return self._keys
        seen = (info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            try:
                rows = json.loads(self.path.read_text() or "[]")
                self._keys = {
                    row["prefix"]: ApiKey(**{**row, "roles": tuple(row["roles"])}) for row in rows
                }
            except (ValueError, TypeError, KeyError) as exc:
                # Not the caller's fault: UNAVAILABLE, and the store stays unread until fixed.
                raise AuthError(
                    f"the API key store {self.path} is unreadable: {exc}", unavailable=True
                ) from exc
            self._seen = seen
        return self._keys

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        """Yields the keys for a change, written back when the block ends; one writer at once."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = os.open(self.path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._seen = None
            keys = dict(self._read())
            yield keys
            rows = [asdict(key) for key in keys.values()]
            write_private(self.path, json.dumps(rows, indent=2).encode())
        finally:
            os.close(lock)

    def create(
        self,
        *,
        subject: str,
        roles: Iterable[str],
        ttl: timedelta | None = None,
        name: str = "",
        now: datetime | None = None,
    ) -> tuple[str, ApiKey]:
        """Returns a new key's full value (shown once) and its stored record."""
        roles = tuple(sorted(set(roles)))
        if unknown_roles(roles):
            raise ValueError(f"unknown role(s) {unknown_roles(roles)}")
        if not subject.strip():
            raise ValueError("the subject must not be empty")
        created = _now(now)
        prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
        key = ApiKey(
            prefix=prefix,
            secret_sha256=_digest(secret),
            subject=subject,
            roles=roles,
            name=name,
            created_at=created.isoformat(),
            expires_at=(created + ttl).isoformat() if ttl else "",
        )
        with self._locked() as keys:
            keys[prefix] = key
        return f"{API_KEY_PREFIX}{prefix}_{secret}", key

    def list(self) -> list[ApiKey]:
        """Returns every key, revoked and expired ones included, oldest first."""
        return sorted(self._read().values(), key=lambda key: key.created_at)

    def revoke(self, prefix: str, now: datetime | None = None) -> ApiKey:
        """Returns the key with `prefix`, revoked from `now` on; KeyError if there is none."""
        with self._locked() as keys:
            key = keys[prefix]
            if not key.revoked_at:
                keys[prefix] = key = replace(key, revoked_at=_now(now).isoformat())
        return key

    def verify(self, presented: str, now: datetime | None = None) -> Principal:
        """Returns the principal of a valid key; raises AuthError with the reason."""
        body = presented.removeprefix(API_KEY_PREFIX)
        prefix, _, secret = body.partition("_")
        key = self._read().get(prefix)
        if key is None or not secret:
            raise AuthError("unknown API key")
        if not hmac.compare_digest(key.secret_sha256, _digest(secret)):
            raise AuthError("the API key's secret does not match")
        state = key.state(_now(now))
        if state != "active":
            raise AuthError(f"the API key {prefix} is {state}")
        return Principal(key.subject, frozenset(key.roles), f"apikey:{prefix}")
