"""The key store and the secrets: wrapping, destruction, tombstones, wrong master keys."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from careops_platform.contacts import decode_secret, load_secret
from careops_platform.db import make_engine
from prometheus_client import REGISTRY

from customer.keystore import DecryptionFailed, KeyDestroyed, KeyStore, seal, unseal

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def failures(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "careops_customer_decryption_failures_total", {"reason": reason}
    )
    return value or 0.0


def test_keys_are_wrapped_destroyed_and_never_recreated(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    keys = KeyStore(engine, os.urandom(32))
    keys.create_schema()
    key = keys.ensure("C-1", NOW)
    assert keys.ensure("C-1", NOW) == key == keys.get("C-1")
    sealed = seal(key, "C-1", b"personal")
    assert unseal(key, "C-1", sealed) == b"personal"
    before = failures("corrupt")
    with pytest.raises(DecryptionFailed):
        unseal(key, "C-2", sealed)  # bound to its customer
    assert failures("corrupt") == before + 1

    keys.destroy("C-1", NOW, "customer_request")
    keys.destroy("C-1", NOW, "customer_request")  # idempotent
    state = keys.state("C-1")
    assert state is not None and not state.live and state.destroyed_at is not None
    for call in (lambda: keys.get("C-1"), lambda: keys.ensure("C-1", NOW)):
        with pytest.raises(KeyDestroyed):
            call()
    assert "C-1" not in keys.live_keys()
    assert keys.unlogged_erasures() == [("C-1", "customer_request")]
    keys.mark_logged("C-1")
    assert keys.unlogged_erasures() == []
    keys.destroy("C-never", NOW, "legal_order")  # a tombstone even without a key
    with pytest.raises(KeyDestroyed):
        keys.ensure("C-never", NOW)
    engine.dispose()


def test_a_wrong_master_key_is_counted_not_confused_with_erasure(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    right = KeyStore(engine, os.urandom(32))
    right.create_schema()
    right.ensure("C-1", NOW)
    wrong = KeyStore(engine, os.urandom(32))
    before, missing = failures("wrong_master_key"), failures("missing_key")
    with pytest.raises(DecryptionFailed) as caught:
        wrong.get("C-1")
    assert caught.value.reason == "wrong_master_key"
    with pytest.raises(DecryptionFailed):
        wrong.get("C-unknown")
    assert failures("wrong_master_key") == before + 1
    assert failures("missing_key") == missing + 1
    engine.dispose()


def test_secrets_are_configured_or_generated_once(tmp_path: Path) -> None:
    first = load_secret("", str(tmp_path), "master.key", "CAREOPS_X")
    assert load_secret("", str(tmp_path), "master.key", "CAREOPS_X") == first
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]
    with pytest.raises(ValueError, match="CAREOPS_X must decode to 32 bytes"):
        decode_secret("c2hvcnQ=", "CAREOPS_X")
    with pytest.raises(ValueError, match="CAREOPS_X is not base64"):
        decode_secret("***", "CAREOPS_X")
