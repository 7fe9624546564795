"""Quality's key store: survey comments, open answers and follow-up notes are sealed on the
log under the survey customer's data key (careops_platform.keystore / .sealing), in its own
table `quality_text_keys`; erasing the customer destroys the key (projections.text_shredder).
"""

from __future__ import annotations

from careops_platform import keystore as shared
from careops_platform.sealing import TextSealer
from sqlalchemy import Engine, MetaData

from quality import domain

metadata = MetaData()
# Customer ids as long as quality's read models keep them.
text_keys = shared.key_table("quality_text_keys", metadata, owner_length=100)

DECRYPTION_FAILURES = shared.decryption_failures(
    "careops_quality_decryption_failures_total", "Survey free text"
)
CIPHER = shared.Cipher("careops-quality", DECRYPTION_FAILURES)


def text_sealer(engine: Engine, master_key: bytes) -> TextSealer:
    """Returns the sealer of survey texts over the key store in `engine` (schema not created)."""
    keys = shared.KeyStore(engine, master_key, table=text_keys, cipher=CIPHER)
    return TextSealer(keys, domain.FREE_TEXT)
