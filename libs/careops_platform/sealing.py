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

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from careops_published.sealed import SealedText

from careops_platform.keystore import (
    KEY_VERSION,
    NONCE_BYTES,
    DecryptionFailed,
    KeyDestroyed,
    KeyStore,
)

log = logging.getLogger(__name__)
E = TypeVar("E")
PURPOSE = "text"


def _blank(value: Any) -> Any:
    return () if isinstance(value, tuple) else ""


class TextSealer:
    """Seals and opens the free-text fields of events (`fields`: per event type) for their
    owner, with the data keys of `keys`. Key lookups block: call from a worker thread (the
    projections' apply) or accept a short SQL read."""

    def __init__(self, keys: KeyStore, fields: Mapping[type, tuple[str, ...]]) -> None:
        self.keys = keys
        self._fields = dict(fields)

    def key_for(self, owner: str, now: datetime) -> bytes | None:
        """Returns the owner's data key for sealing, created on first use; None when the
        owner was erased (blocking)."""
        try:
            return self.keys.find_or_create(owner, now)
        except KeyDestroyed:
            return None

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
        values = {name: getattr(event, name) for name in fields}
        if not any(values.values()):
            return event
        if key is None:
            return replace(event, **{name: _blank(value) for name, value in values.items()})  # type: ignore[type-var]
        plaintext = json.dumps(
            {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()},
            ensure_ascii=False,
        ).encode()
        sealed = self.keys.cipher.seal(key, owner, plaintext, PURPOSE)
        text = SealedText(owner, KEY_VERSION, sealed[:NONCE_BYTES], sealed[NONCE_BYTES:])
        return replace(event, sealed=text)  # type: ignore[type-var]

    def open(self, event: E) -> E:
        """Returns the event with its sealed free text in clear; empty when the owner was
        erased or the text cannot be decrypted (counted). Blocking (reads the key)."""
        sealed: SealedText | None = getattr(event, "sealed", None)
        fields = self._fields.get(type(event), ())
        if sealed is None or any(getattr(event, name) for name in fields):
            return event  # plaintext (no owner, an old event) or still open in memory
        try:
            key = self.keys.get(sealed.owner_id)
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
        opened = {
            name: tuple(values[name]) if isinstance(getattr(event, name), tuple) else values[name]
            for name in fields
            if name in values
        }
        return replace(event, **opened)  # type: ignore[type-var]
