"""Free text of events sealed for its owner (crypto-shredding of what people wrote).

An event type lists its free-text fields (e.g. a reply's body). Before the append, the
application seals them for the owner (a customer id) into the event's `sealed` field
(careops_published.sealed.SealedText: a JSON object of the fields, AES-256-GCM under the
owner's data key from a careops_platform.keystore.KeyStore); the codec then writes the fields
empty (careops_eventstore.codec.EventCodec `sealed_fields`), so the log never holds them in
clear. Readers (aggregate folds, projections) open them with the key store. Once the owner's
key is destroyed they read as empty, never as an error: erasure is not poison.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from careops_eventstore.aggregates import AggregateRepository, Loaded
from careops_eventstore.codec import DecodedEvent, from_timestamp
from careops_published.customer import CustomerForgotten
from careops_published.sealed import SealedText
from sqlalchemy import Connection, Engine, Table, update

from careops_platform.db import scrub
from careops_platform.errors import Unavailable
from careops_platform.keystore import (
    KEY_VERSION,
    NONCE_BYTES,
    DecryptionFailed,
    KeyDestroyed,
    KeyStore,
)

log = logging.getLogger(__name__)
E = TypeVar("E")
S = TypeVar("S")
PURPOSE = "text"
# How long a command path keeps an owner's data key for sealing. Sealing under a key another
# replica has just destroyed loses nothing: that text is unreadable, as erasure wants.
SEALING_KEY_SECONDS = 30.0


def _blank(value: Any) -> Any:
    return () if isinstance(value, tuple) else ""


def _get(event: Any, path: str) -> Any:
    """A field's value; `answers.text`: the `text` of each item of `answers` (a list)."""
    head, _, tail = path.partition(".")
    value = getattr(event, head)
    if not tail:
        return value
    items = value if isinstance(value, tuple) else (value,) if value is not None else ()
    return [getattr(item, tail) for item in items]


def _with(event: E, path: str, value: Any) -> E:
    """The event with one field set; `answers.text`: each item's from the list `value`."""
    head, _, tail = path.partition(".")
    if not tail:
        return replace(event, **{head: value})  # type: ignore[type-var]
    current = getattr(event, head)
    if isinstance(current, tuple):
        items = tuple(
            replace(item, **{tail: text}) for item, text in zip(current, value, strict=False)
        )
        return replace(event, **{head: items + current[len(items) :]})  # type: ignore[type-var]
    if current is None or not value:
        return event
    return replace(event, **{head: replace(current, **{tail: value[0]})})  # type: ignore[type-var]


def _written(value: Any) -> bool:
    return any(value) if isinstance(value, list) else bool(value)


def _emptied(value: Any) -> Any:
    return ["" for _ in value] if isinstance(value, list) else _blank(value)


class TextSealer:
    """Seals and opens the free-text fields of events (`fields`: per event type) for their
    owner, with the data keys of `keys`. Key lookups block: call from a worker thread (the
    projections' apply) or accept a short SQL read."""

    def __init__(
        self,
        keys: KeyStore,
        fields: Mapping[type, tuple[str, ...]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self._fields = dict(fields)
        self._monotonic = monotonic
        # Commands: owner -> (data key, until); one SQL read and unwrap per owner and period,
        # not per command. Dropped at once when this process destroys the key.
        self._sealing: dict[str, tuple[bytes, float]] = {}
        self._sealing_lock = threading.Lock()
        # Projections: the keys read within one batch transaction (`scope`), per thread.
        self._batch = threading.local()

    def key_for(self, owner: str, now: datetime) -> bytes | None:
        """Returns the owner's data key for sealing, created on first use; None when the
        owner was erased (blocking)."""
        cached = self.cached_key(owner)
        if cached is not None:
            return cached
        try:
            key = self.keys.find_or_create(owner, now)
        except KeyDestroyed:
            return None
        except DecryptionFailed as exc:
            # Never written in clear instead: the command fails whole, nothing appended.
            raise Unavailable(
                f"free text cannot be sealed: the data key of {owner} cannot be unwrapped "
                f"({exc.reason}); check the service's master key and key store"
            ) from None
        with self._sealing_lock:
            self._sealing[owner] = (key, self._monotonic() + SEALING_KEY_SECONDS)
        return key

    def cached_key(self, owner: str) -> bytes | None:
        """The owner's sealing key if this process read it lately (never blocks), else None."""
        with self._sealing_lock:
            cached = self._sealing.get(owner)
        return cached[0] if cached is not None and cached[1] > self._monotonic() else None

    def destroy(self, owner: str, now: datetime, reason: str) -> None:
        """Destroys the owner's data key (see KeyStore.destroy), forgotten here first."""
        with self._sealing_lock:
            self._sealing.pop(owner, None)
        self.keys.destroy(owner, now, reason)

    def live(self, owner: str) -> bool:
        """Whether the owner's texts can still be read (no key yet counts as live)."""
        state = self.keys.state(owner)
        return state is None or state.live

    def seal(self, event: E, owner: str, key: bytes | None) -> E:
        """Returns the event with its free text sealed for `owner` in `sealed` (the text is
        kept in memory; the codec leaves it out of the log). Without an owner the event
        stays as it is; with the owner erased (`key` None) the text is dropped."""
        fields = self._fields.get(type(event))
        if not fields or not owner:
            return event
        values = {path: _get(event, path) for path in fields}
        if not any(_written(value) for value in values.values()):
            return event
        if key is None:
            for path, value in values.items():
                event = _with(event, path, _emptied(value))
            return event
        plaintext = json.dumps(
            {path: list(v) if isinstance(v, tuple) else v for path, v in values.items()},
            ensure_ascii=False,
        ).encode()
        sealed = self.keys.cipher.seal(key, owner, plaintext, PURPOSE)
        text = SealedText(owner, KEY_VERSION, sealed[:NONCE_BYTES], sealed[NONCE_BYTES:])
        return replace(event, sealed=text)  # type: ignore[type-var]

    def open(self, event: E, scope: object | None = None) -> E:
        """Returns the event with its sealed free text in clear; empty when the owner was
        erased or the text cannot be decrypted (counted). Blocking (reads the key).

        `scope`: a projection's batch transaction. Keys read under one scope are kept for the
        rest of it (a batch of one customer's events reads the key once); a new scope reads
        afresh, so an erasure committed before a batch began is always seen."""
        sealed: SealedText | None = getattr(event, "sealed", None)
        fields = self._fields.get(type(event), ())
        if sealed is None or any(_written(_get(event, path)) for path in fields):
            return event  # plaintext (no owner, an old event) or still open in memory
        try:
            key = self._key_in(scope, sealed.owner_id)
            plaintext = self.keys.cipher.open(
                key, sealed.owner_id, sealed.nonce, sealed.ciphertext, PURPOSE
            )
        except KeyDestroyed:
            return event  # erased: the fields stay empty
        except DecryptionFailed as exc:
            log.warning(
                "sealed text cannot be decrypted",
                extra={"owner": sealed.owner_id, "reason": exc.reason},
            )
            return event
        values = json.loads(plaintext)
        for path in fields:
            if path in values:
                value = values[path]
                if isinstance(getattr(event, path.partition(".")[0]), tuple) and "." not in path:
                    value = tuple(value)
                event = _with(event, path, value)
        return event

    def _key_in(self, scope: object | None, owner: str) -> bytes:
        """The owner's data key, read once per scope; raises as KeyStore.get does."""
        if scope is None:
            return self.keys.get(owner)
        batch = self._batch
        if getattr(batch, "scope", None) is not scope:
            batch.scope, batch.keys = scope, {}
        keys: dict[str, bytes | None] = batch.keys
        if owner not in keys:
            try:
                keys[owner] = self.keys.get(owner)
            except KeyDestroyed:
                keys[owner] = None
        key = keys[owner]
        if key is None:
            raise KeyDestroyed(owner)
        return key


async def sealing_key(
    texts: TextSealer | None,
    repository: AggregateRepository[S],
    aggregate_id: str,
    owner: str,
    now: datetime,
) -> bytes | None:
    """Returns the owner's data key for sealing a command's texts, read off the event loop;
    None without a sealer or an owner, or once the owner is erased — then the aggregate kept in
    memory is dropped too (its texts must not outlive the key)."""
    if texts is None or not owner:
        return None
    key = texts.cached_key(owner) or await asyncio.to_thread(texts.key_for, owner, now)
    if key is None:
        repository.forget(aggregate_id)
    return key


def sealed_all(texts: TextSealer | None, events: list[E], owner: str, key: bytes | None) -> list[E]:
    """The events a command decided, their free text sealed for `owner` (see TextSealer.seal)."""
    if texts is None or not owner:
        return events
    return [texts.seal(event, owner, key) for event in events]


async def unless_erased(
    texts: TextSealer | None,
    repository: AggregateRepository[S],
    aggregate_id: str,
    loaded: Loaded[S],
    owner: str,
) -> Loaded[S]:
    """Returns `loaded`, refolded from the log when its owner's key is gone: an aggregate kept
    in memory (this replica's cache) must not outlive an erasure another replica carried out."""
    if texts is None or not owner or await asyncio.to_thread(texts.live, owner):
        return loaded
    repository.forget(aggregate_id)
    return await repository.load(aggregate_id)


def opening(
    evolve: Callable[[S, Any, datetime], S], texts: TextSealer
) -> Callable[[S, Any, datetime], S]:
    """Returns an aggregate's evolve over events whose sealed free text is opened first (read
    as empty once the owner is erased)."""

    def opened(state: S, event: Any, at: datetime) -> S:
        return evolve(state, texts.open(event), at)

    return opened


class Shredder:
    """A projection on the customer stream that erases a forgotten customer's free text in one
    context: on CustomerForgotten it destroys the customer's data key in the context's key
    store (idempotent; the log's sealed texts are unreadable from then on), then blanks the
    `columns` of the read-model tables that hold the texts in clear (rows by `customer_id`)
    and, once committed, scrubs the database files (careops_platform.db.scrub). It owns no
    table: a rebuild replays the erasures. The key goes first, so a text projected after this
    reads as empty anyway."""

    tables: tuple[Table, ...] = ()

    def __init__(self, name: str, texts: TextSealer, columns: Mapping[Table, tuple[str, ...]]):
        self.name = name
        self._texts = texts
        self._columns = dict(columns)
        self._shredded = False

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        payload = event.event
        if not isinstance(payload, CustomerForgotten):
            return
        customer_id = event.envelope.aggregate_id
        at = from_timestamp(event.envelope.occurred_at)
        self._texts.destroy(customer_id, at, payload.reason or "customer_request")
        for table, names in self._columns.items():
            connection.execute(
                update(table)
                .where(table.c.customer_id == customer_id)
                .values({name: "" for name in names})
            )
        self._shredded = True

    def committed(self, engine: Engine) -> None:
        """After a batch that blanked texts: their old bytes leave the WAL and freed pages."""
        if self._shredded:
            self._shredded = False
            scrub(engine, *(table.name for table in self._columns))
