"""Alembic environment: runs on the connection handed over by careops_platform.db.migrate,
against ticketing's read models and the shared tables (see careops_platform.db.run_env)."""

from careops_platform.db import run_env
from ticketing.readmodels import metadata

# ticketing_text_keys: the key store's (ticketing.keystore), created by it, possibly in this
# database.
run_env(metadata, foreign_tables=["ticketing_text_keys"])
