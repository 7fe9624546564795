"""Alembic environment: runs on the connection handed over by careops_platform.db.migrate,
against customer's read models and the shared tables (see careops_platform.db.run_env)."""

from careops_platform.db import run_env
from customer.readmodels import metadata

# customer_keys: the key store's (customer.keystore), created by it, possibly in this database.
run_env(metadata, foreign_tables=["customer_keys"])
