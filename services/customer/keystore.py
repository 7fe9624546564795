"""Customer-profile's key store: the shared crypto-shredding parts (careops_platform.keystore)
with its own table (`customer_keys`), namespace and failure metric.

One AES-256-GCM data key per customer, wrapped by the master key; erasure overwrites the
wrapped key with NULL and keeps a tombstone (see careops_platform.keystore).
"""

from __future__ import annotations

from careops_platform import keystore as shared
from careops_platform.keystore import KEY_VERSION, NONCE_BYTES
from careops_platform.keystore import DecryptionFailed as DecryptionFailed
from careops_platform.keystore import KeyDestroyed as KeyDestroyed
from careops_platform.keystore import KeyState as KeyState
from sqlalchemy import Engine, MetaData

from customer.domain import Sealed

metadata = MetaData()
customer_keys = shared.key_table("customer_keys", metadata)

DECRYPTION_FAILURES = shared.decryption_failures(
    "careops_customer_decryption_failures_total", "Personal data"
)
DECRYPTION_FAILURE_REASONS = shared.DECRYPTION_FAILURE_REASONS
CIPHER = shared.Cipher("careops-customer", DECRYPTION_FAILURES)
PURPOSE = "personal"


def seal(data_key: bytes, customer_id: str, plaintext: bytes) -> Sealed:
    """Encrypts `plaintext` for one customer (the customer id is authenticated data)."""
    sealed = CIPHER.seal(data_key, customer_id, plaintext, PURPOSE)
    return Sealed(KEY_VERSION, sealed[:NONCE_BYTES], sealed[NONCE_BYTES:])


def unseal(data_key: bytes, customer_id: str, sealed: Sealed) -> bytes:
    """Decrypts a sealed record; raises DecryptionFailed (and counts it) when it cannot."""
    return CIPHER.open(data_key, customer_id, sealed.nonce, sealed.ciphertext, PURPOSE)


class KeyStore(shared.KeyStore):
    """Creates, unwraps and destroys customer data keys (blocking; call from a thread)."""

    def __init__(self, engine: Engine, master_key: bytes) -> None:
        super().__init__(engine, master_key, table=customer_keys, cipher=CIPHER)
