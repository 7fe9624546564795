"""Sealed free text (careops.common.v1.SealedText) as a pure value: what a domain event
carries once its free text is encrypted for its owner (careops_platform.sealing)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SealedText:
    """A JSON object of an event's free-text fields, AES-256-GCM under the owner's data key."""

    owner_id: str
    key_version: int
    nonce: bytes
    ciphertext: bytes
