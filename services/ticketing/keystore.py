"""Ticketing's key store: the free text of a ticket (subject, messages, notes, resolution,
compensation reasons, complaint steps, checklist notes) is sealed on the log under the
ticket customer's data key (careops_platform.keystore / .sealing), in its own table
`ticketing_text_keys`; erasing the customer destroys the key (projections.TextShredder).
"""

from __future__ import annotations

from careops_platform import keystore as shared
from careops_platform.sealing import TextSealer
from sqlalchemy import Engine, MetaData

from ticketing import domain

metadata = MetaData()
# Customer ids as long as tickets accept them (domain.MAX_ID).
text_keys = shared.key_table("ticketing_text_keys", metadata, owner_length=domain.MAX_ID)

DECRYPTION_FAILURES = shared.decryption_failures(
    "careops_ticketing_decryption_failures_total", "Ticket free text"
)
CIPHER = shared.Cipher("careops-ticketing", DECRYPTION_FAILURES)


def text_sealer(engine: Engine, master_key: bytes) -> TextSealer:
    """Returns the sealer of ticket texts over the key store in `engine` (schema not created)."""
    keys = shared.KeyStore(engine, master_key, table=text_keys, cipher=CIPHER)
    return TextSealer(keys, domain.FREE_TEXT)
