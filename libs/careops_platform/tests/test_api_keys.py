"""API keys: found by prefix, checked against the stored hash only, refused once revoked or
expired, each refusal with its reason."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from careops_platform.api_keys import API_KEY_PREFIX, KEYS_FILE, ApiKeyStore
from careops_platform.identity import INTEGRATION, AuthError, Principal


def test_a_key_verifies_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    store = ApiKeyStore.of(tmp_path)
    value, key = store.create(subject="crm-sync", roles=[INTEGRATION], name="CRM")
    assert value.startswith(f"{API_KEY_PREFIX}{key.prefix}_")
    assert store.verify(value) == Principal(
        "crm-sync", frozenset({INTEGRATION}), f"apikey:{key.prefix}"
    )
    path = tmp_path / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = value.removeprefix(f"{API_KEY_PREFIX}{key.prefix}_")  # url-safe: may hold '_'
    assert (
        len(secret) >= 40
        and secret not in path.read_text()
        and key.secret_sha256 in path.read_text()
    )
    # Another process (the gateway) reads the same file.
    assert ApiKeyStore.of(tmp_path).verify(value).subject == "crm-sync"


def test_refusals_name_their_reason(tmp_path: Path) -> None:
    store = ApiKeyStore.of(tmp_path)
    now = datetime.now(UTC)
    value, key = store.create(subject="bot", roles=[INTEGRATION], ttl=timedelta(days=1), now=now)
    with pytest.raises(AuthError, match="unknown API key"):
        store.verify(f"{API_KEY_PREFIX}00000000_secret")
    with pytest.raises(AuthError, match="does not match"):
        store.verify(f"{API_KEY_PREFIX}{key.prefix}_not-the-secret")
    with pytest.raises(AuthError, match="is expired"):
        store.verify(value, now=now + timedelta(days=2))
    other = ApiKeyStore.of(tmp_path)  # as the gateway: it sees the revocation at once
    assert other.verify(value).subject == "bot"
    store.revoke(key.prefix)
    with pytest.raises(AuthError, match="is revoked"):
        other.verify(value)
    assert [(k.prefix, k.state(now)) for k in other.list()] == [(key.prefix, "revoked")]
    with pytest.raises(KeyError):
        store.revoke("nope")


def test_unknown_roles_and_empty_subjects_are_refused(tmp_path: Path) -> None:
    store = ApiKeyStore.of(tmp_path)
    with pytest.raises(ValueError, match="unknown role"):
        store.create(subject="x", roles=["root"])
    with pytest.raises(ValueError, match="subject"):
        store.create(subject=" ", roles=[INTEGRATION])
    assert store.list() == []


def test_a_corrupt_store_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / KEYS_FILE
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(AuthError, match="unreadable") as caught:
        ApiKeyStore.of(tmp_path).verify(f"{API_KEY_PREFIX}00000000_secret")
    assert caught.value.unavailable
