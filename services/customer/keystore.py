"""Crypto-shredding: one AES-256-GCM data key per customer, wrapped by the master key.

The key store is a SQL table of its own (`customer_keys`), never on the log and owned by no
projection, so rebuilding read models cannot touch (or resurrect) a key. Erasure overwrites the
wrapped key with NULL and keeps a tombstone, so the id can never get a key again. SQLite key
stores run with synchronous=FULL and secure_delete, and truncate the WAL after a destruction, so
a destroyed key is durable when the call returns and its bytes do not linger in the files.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careops_platform.collectors import preinitialise
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client import Counter
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from customer.domain import Sealed

log = logging.getLogger(__name__)

KEY_VERSION = 1
NONCE_BYTES = 12
metadata = MetaData()

customer_keys = Table(
    "customer_keys",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    # nonce || AES-GCM(master key, data key, aad=customer id); NULL once destroyed.
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("master_key_id", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("destroyed_at", DateTime(timezone=True), nullable=True),
    Column("erasure_reason", String(40), nullable=True),
    # True once CustomerForgotten is on the log (see CustomerApp.reconcile_erasures).
    Column("forgotten_logged", Boolean, nullable=False, default=False),
)

DECRYPTION_FAILURES = Counter(
    "careops_customer_decryption_failures_total",
    "Personal data that could not be decrypted, by reason (missing_key, wrong_master_key, "
    "corrupt).",
    ["reason"],
)
DECRYPTION_FAILURE_REASONS = ("missing_key", "wrong_master_key", "corrupt")
# Present at 0 from the start: the critical alert must fire on the very first failure.
preinitialise(DECRYPTION_FAILURES, DECRYPTION_FAILURE_REASONS)


class KeyDestroyed(Exception):
    """The customer's data key was destroyed (the customer was erased)."""


class DecryptionFailed(Exception):
    """A key or a sealed record could not be decrypted; `reason` is the metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class KeyState:
    customer_id: str
    live: bool
    destroyed_at: datetime | None


def _aad(customer_id: str, purpose: str) -> bytes:
    return f"careops-customer:{purpose}:{customer_id}".encode()


def seal(data_key: bytes, customer_id: str, plaintext: bytes) -> Sealed:
    """Encrypts `plaintext` for one customer (the customer id is authenticated data)."""
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _aad(customer_id, "personal"))
    return Sealed(KEY_VERSION, nonce, ciphertext)


def unseal(data_key: bytes, customer_id: str, sealed: Sealed) -> bytes:
    """Decrypts a sealed record; raises DecryptionFailed (and counts it) when it cannot."""
    try:
        return AESGCM(data_key).decrypt(
            sealed.nonce, sealed.ciphertext, _aad(customer_id, "personal")
        )
    except (InvalidTag, ValueError):
        DECRYPTION_FAILURES.labels("corrupt").inc()
        raise DecryptionFailed("corrupt", "sealed personal data failed authentication") from None


def _durable_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


class KeyStore:
    """Creates, unwraps and destroys customer data keys (blocking; call from a thread)."""

    def __init__(self, engine: Engine, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes (AES-256)")
        self._engine = engine
        self._master = AESGCM(master_key)
        self.master_key_id = hmac.new(master_key, b"key-id", hashlib.sha256).hexdigest()[:16]
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _durable_sqlite)

    def create_schema(self) -> None:
        metadata.create_all(self._engine)

    def _wrap(self, customer_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, data_key, _aad(customer_id, "key"))

    def _unwrap(self, customer_id: str, wrapped: bytes, master_key_id: str) -> bytes:
        try:
            return self._master.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(customer_id, "key")
            )
        except InvalidTag:
            reason = "wrong_master_key" if master_key_id != self.master_key_id else "corrupt"
            DECRYPTION_FAILURES.labels(reason).inc()
            raise DecryptionFailed(
                reason, f"the data key of {customer_id} cannot be unwrapped ({reason})"
            ) from None

    def ensure(self, customer_id: str, now: datetime) -> bytes:
        """Returns the customer's data key, creating it on first use; raises KeyDestroyed.

        Insert first (the usual case is a new customer); an existing row is read instead."""
        data_key = AESGCM.generate_key(bit_length=256)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(customer_keys).values(
                        customer_id=customer_id,
                        wrapped_key=self._wrap(customer_id, data_key),
                        master_key_id=self.master_key_id,
                        created_at=now,
                    )
                )
        except IntegrityError:
            existing = self._read(customer_id)
            if existing is None:
                raise
            return existing
        return data_key

    def _row(self, customer_id: str) -> Any:
        with self._engine.connect() as connection:
            return connection.execute(
                select(customer_keys).where(customer_keys.c.customer_id == customer_id)
            ).first()

    def _read(self, customer_id: str) -> bytes | None:
        row = self._row(customer_id)
        if row is None:
            return None
        if row.wrapped_key is None:
            raise KeyDestroyed(f"customer {customer_id} was erased")
        return self._unwrap(customer_id, row.wrapped_key, row.master_key_id)

    def get(self, customer_id: str) -> bytes:
        """Returns the data key; raises KeyDestroyed, or DecryptionFailed when missing."""
        key = self._read(customer_id)
        if key is None:
            DECRYPTION_FAILURES.labels("missing_key").inc()
            raise DecryptionFailed("missing_key", f"no data key for customer {customer_id}")
        return key

    def state(self, customer_id: str) -> KeyState | None:
        row = self._row(customer_id)
        if row is None:
            return None
        return KeyState(customer_id, row.wrapped_key is not None, row.destroyed_at)

    def destroy(self, customer_id: str, now: datetime, reason: str) -> None:
        """Overwrites the wrapped key with NULL (a tombstone remains); durable on return."""
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(customer_keys)
                .where(customer_keys.c.customer_id == customer_id)
                .values(wrapped_key=None, destroyed_at=now, erasure_reason=reason)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(customer_keys).values(
                        customer_id=customer_id,
                        wrapped_key=None,
                        master_key_id=self.master_key_id,
                        created_at=now,
                        destroyed_at=now,
                        erasure_reason=reason,
                    )
                )
        if self._engine.dialect.name == "sqlite":
            with self._engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        if self._engine.dialect.name == "postgresql":
            # Dead tuples keep the old bytes until vacuumed; do it now (best effort).
            try:
                with self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                ) as connection:
                    connection.execute(text("VACUUM customer_keys"))
            except Exception:
                log.warning("VACUUM of customer_keys failed", exc_info=True)

    def mark_logged(self, customer_id: str) -> None:
        """Records that CustomerForgotten is on the log."""
        with self._engine.begin() as connection:
            connection.execute(
                update(customer_keys)
                .where(customer_keys.c.customer_id == customer_id)
                .values(forgotten_logged=True)
            )

    def unlogged_erasures(self) -> list[tuple[str, str]]:
        """Returns (customer id, reason) of destroyed keys whose CustomerForgotten may be
        missing from the log."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(customer_keys.c.customer_id, customer_keys.c.erasure_reason).where(
                    customer_keys.c.wrapped_key.is_(None),
                    customer_keys.c.forgotten_logged.is_(False),
                )
            )
            return [(row.customer_id, row.erasure_reason or "customer_request") for row in rows]

    def live_keys(self) -> dict[str, bytes]:
        """Returns every live data key by customer (tests and audits)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(customer_keys).where(customer_keys.c.wrapped_key.is_not(None))
            ).all()
        return {
            row.customer_id: self._unwrap(row.customer_id, row.wrapped_key, row.master_key_id)
            for row in rows
        }
