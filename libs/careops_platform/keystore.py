"""Crypto-shredding: one AES-256-GCM data key per owner (a customer), wrapped by a master key.

Shared by every context that keeps personal data on its log (customer-profile's profiles,
ticketing's free text): each has its own table, master key and metric, built from the same
parts here. The key store is a SQL table of its own, never on the log and owned by no
projection, so rebuilding read models cannot touch (or resurrect) a key. Erasure overwrites
the wrapped key with NULL and keeps a tombstone, so the owner can never get a key again. SQLite
key stores run with synchronous=FULL and secure_delete, and truncate the WAL after a
destruction, so a destroyed key is durable when the call returns and its bytes do not linger
in the files.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client import Counter
from pydantic import AliasChoices, Field, SecretStr
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from careops_platform.collectors import preinitialise
from careops_platform.contacts import load_secret
from careops_platform.db import database_url as default_database_url
from careops_platform.db import scrub
from careops_platform.registry import ServiceEntry

log = logging.getLogger(__name__)

KEY_VERSION = 1
NONCE_BYTES = 12
DECRYPTION_FAILURE_REASONS = ("missing_key", "wrong_master_key", "corrupt")


def key_table(
    name: str, metadata: MetaData, owner_column: str = "customer_id", owner_length: int = 64
) -> Table:
    """Returns a key store table: one row per owner, the wrapped key NULL once destroyed."""
    return Table(
        name,
        metadata,
        Column(owner_column, String(owner_length), primary_key=True),
        # nonce || AES-GCM(master key, data key, aad=owner); NULL once destroyed.
        Column("wrapped_key", LargeBinary, nullable=True),
        Column("master_key_id", String(16), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("destroyed_at", DateTime(timezone=True), nullable=True),
        Column("erasure_reason", String(40), nullable=True),
        # True once the erasure's event is on the log (customer's reconcile_erasures).
        Column("forgotten_logged", Boolean, nullable=False, default=False),
    )


def master_key_setting(entry: ServiceEntry) -> Any:
    """Returns the pydantic field of a service's master key, `CAREOPS_<SERVICE>_MASTER_KEY`."""
    return Field(
        SecretStr(""),
        validation_alias=AliasChoices("master_key", entry.env("master_key")),
        description="base64 AES-256 key wrapping the data keys; empty: generated in data_dir",
    )


def keystore_url_setting(entry: ServiceEntry) -> Any:
    """Returns the pydantic field of where a service's key store lives."""
    return Field(
        "",
        validation_alias=AliasChoices("keystore_url", entry.env("keystore_url")),
        description="SQL URL of the key store; empty: the database, or SQLite in data_dir",
    )


def keystore_database(keystore_url: str, database_url: str, data_dir: str, name: str) -> str:
    """Returns the key store's URL: its own setting, else the service's database (its own
    table), else SQLite `<name>.db` in the data directory."""
    return keystore_url or database_url or default_database_url("", data_dir, name)


def master_key(entry: ServiceEntry, configured: SecretStr, data_dir: str) -> bytes:
    """Returns the service's master key: the setting, else `<data dir>/<service>-master.key`
    (generated on first start, mode 0600)."""
    return load_secret(
        configured.get_secret_value(),
        data_dir,
        f"{entry.name}-master.key",
        entry.env("master_key"),
    )


def decryption_failures(name: str, what: str) -> Counter:
    """Returns a context's counter of undecryptable data, every reason present at 0 (the
    critical alert must fire on the very first failure)."""
    counter = Counter(
        name,
        f"{what} that could not be decrypted, by reason (missing_key, wrong_master_key, corrupt).",
        ["reason"],
    )
    preinitialise(counter, DECRYPTION_FAILURE_REASONS)
    return counter


class KeyDestroyed(Exception):
    """The owner's data key was destroyed (the customer was erased)."""


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


@dataclass(frozen=True)
class Cipher:
    """AES-256-GCM under one context's namespace: the associated data binds every ciphertext
    to its context, purpose and owner (a record cannot be moved to another customer)."""

    namespace: str
    failures: Counter

    def aad(self, owner: str, purpose: str) -> bytes:
        return f"{self.namespace}:{purpose}:{owner}".encode()

    def seal(self, data_key: bytes, owner: str, plaintext: bytes, purpose: str) -> bytes:
        """Returns nonce || ciphertext of `plaintext` for `owner`."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(data_key).encrypt(nonce, plaintext, self.aad(owner, purpose))

    def open(
        self, data_key: bytes, owner: str, nonce: bytes, ciphertext: bytes, purpose: str
    ) -> bytes:
        """Decrypts; raises DecryptionFailed (and counts it) when it cannot."""
        try:
            return AESGCM(data_key).decrypt(nonce, ciphertext, self.aad(owner, purpose))
        except (InvalidTag, ValueError):
            self.failures.labels("corrupt").inc()
            raise DecryptionFailed("corrupt", "sealed data failed authentication") from None


def _durable_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


class KeyStore:
    """Creates, unwraps and destroys data keys in `table` (blocking; call from a thread)."""

    def __init__(self, engine: Engine, master_key: bytes, *, table: Table, cipher: Cipher) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes (AES-256)")
        self._engine = engine
        self._table = table
        self._owner = table.primary_key.columns.values()[0]
        self._cipher = cipher
        self._master = AESGCM(master_key)
        # Built once: a registration and every read of a key run these (building a statement
        # per call cost more than its execution on SQLite).
        self._insert_key = insert(table)
        self._select_key = select(table).where(self._owner == bindparam("owner"))
        self.master_key_id = hmac.new(master_key, b"key-id", hashlib.sha256).hexdigest()[:16]
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _durable_sqlite)

    @property
    def cipher(self) -> Cipher:
        return self._cipher

    def create_schema(self) -> None:
        self._table.create(self._engine, checkfirst=True)

    def _wrap(self, owner: str, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, data_key, self._cipher.aad(owner, "key"))

    def _unwrap(self, owner: str, wrapped: bytes, master_key_id: str) -> bytes:
        try:
            return self._master.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], self._cipher.aad(owner, "key")
            )
        except InvalidTag:
            reason = "wrong_master_key" if master_key_id != self.master_key_id else "corrupt"
            self._cipher.failures.labels(reason).inc()
            raise DecryptionFailed(
                reason, f"the data key of {owner} cannot be unwrapped ({reason})"
            ) from None

    def ensure(self, owner: str, now: datetime) -> bytes:
        """Returns the owner's data key, creating it on first use; raises KeyDestroyed.

        Insert first (the usual case for customer-profile is a new customer); an existing
        row is read instead."""
        data_key = AESGCM.generate_key(bit_length=256)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    self._insert_key,
                    {
                        self._owner.name: owner,
                        "wrapped_key": self._wrap(owner, data_key),
                        "master_key_id": self.master_key_id,
                        "created_at": now,
                    },
                )
        except IntegrityError:
            existing = self._read(owner)
            if existing is None:
                raise
            return existing
        return data_key

    def find_or_create(self, owner: str, now: datetime) -> bytes:
        """`ensure` for owners that usually have a key already: read first (no write, no
        fsync), create only when missing; raises KeyDestroyed."""
        existing = self._read(owner)
        return existing if existing is not None else self.ensure(owner, now)

    def _row(self, owner: str) -> Any:
        with self._engine.connect() as connection:
            return connection.execute(self._select_key, {"owner": owner}).first()

    def _read(self, owner: str) -> bytes | None:
        row = self._row(owner)
        if row is None:
            return None
        if row.wrapped_key is None:
            raise KeyDestroyed(f"{owner} was erased")
        return self._unwrap(owner, row.wrapped_key, row.master_key_id)

    def get(self, owner: str) -> bytes:
        """Returns the data key; raises KeyDestroyed, or DecryptionFailed when missing."""
        key = self._read(owner)
        if key is None:
            self._cipher.failures.labels("missing_key").inc()
            raise DecryptionFailed("missing_key", f"no data key for {owner}")
        return key

    def state(self, owner: str) -> KeyState | None:
        row = self._row(owner)
        if row is None:
            return None
        return KeyState(owner, row.wrapped_key is not None, row.destroyed_at)

    def destroy(self, owner: str, now: datetime, reason: str) -> None:
        """Overwrites the wrapped key with NULL (a tombstone remains); durable on return.
        Idempotent (destroying again only updates the tombstone's time and reason)."""
        table = self._table
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(table)
                .where(self._owner == owner)
                .values(wrapped_key=None, destroyed_at=now, erasure_reason=reason)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(table).values(
                        {
                            self._owner.name: owner,
                            "wrapped_key": None,
                            "master_key_id": self.master_key_id,
                            "created_at": now,
                            "destroyed_at": now,
                            "erasure_reason": reason,
                        }
                    )
                )
        scrub(self._engine, self._table.name)

    def mark_logged(self, owner: str) -> None:
        """Records that the erasure's event is on the log."""
        with self._engine.begin() as connection:
            connection.execute(
                update(self._table).where(self._owner == owner).values(forgotten_logged=True)
            )

    def unlogged_erasures(self) -> list[tuple[str, str]]:
        """Returns (owner, reason) of destroyed keys whose erasure event may be missing from
        the log."""
        table = self._table
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(self._owner, table.c.erasure_reason).where(
                    table.c.wrapped_key.is_(None), table.c.forgotten_logged.is_(False)
                )
            )
            return [(row[0], row[1] or "customer_request") for row in rows]

    def live_keys(self) -> dict[str, bytes]:
        """Returns every live data key by owner (tests and audits)."""
        table = self._table
        with self._engine.connect() as connection:
            rows = connection.execute(select(table).where(table.c.wrapped_key.is_not(None))).all()
        return {row[0]: self._unwrap(row[0], row.wrapped_key, row.master_key_id) for row in rows}
