"""SQLAlchemy engines for SQLite (embedded) and PostgreSQL, and Alembic migrations."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from careops_eventstore import sqlstate
from sqlalchemy import Engine, MetaData, create_engine, event, text

log = logging.getLogger(__name__)


def database_url(configured: str, data_dir: str, service: str) -> str:
    """Returns the configured URL, or a SQLite file under the data directory."""
    if configured:
        return configured
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / (service + '.db')}"


def make_engine(url: str) -> Engine:
    """Creates an engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten content is zeroed, not left in free pages: erased text
        # (crypto-shredding's read-model side) must not linger in the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


def scrub(engine: Engine, *tables: str) -> None:
    """Makes the old bytes of erased rows unreachable in the database's files (best effort):
    SQLite moves its WAL into the database and truncates it (secure_delete zeroed the freed
    content); PostgreSQL vacuums the tables' dead tuples."""
    try:
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                for table in tables:
                    connection.execute(text(f"VACUUM {table}"))
    except Exception:
        log.warning("scrubbing %s failed", ", ".join(tables), exc_info=True)


def migrate(engine: Engine, migrations_dir: Path) -> None:
    """Upgrades the database to the newest revision in `migrations_dir`."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def run_env(metadata: MetaData, *, foreign_tables: Collection[str] = ()) -> None:
    """The body of every service's migrations/env.py: migrates (or, for `alembic check`,
    compares) the connection `migrate` hands over against the service's read models plus the
    tables every service shares. `foreign_tables` live in the same database but are not the
    migrations' (created by their own module), so the comparison leaves them out."""
    from alembic import context

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return type_ != "table" or name not in foreign_tables

    context.configure(
        connection=context.config.attributes["connection"],
        target_metadata=[metadata, sqlstate.metadata],
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


# Migration steps every service shares. Each emits its tables as of the revision that added
# them (frozen here, never read from the live Table objects): a later change to
# careops_eventstore.sqlstate is a new migration, and the drift test (tests/test_migrations.py)
# says when one is missing.


def create_checkpoint_and_timer_tables() -> None:
    """Migration step of every service's first revision: projection checkpoints and due timers
    (careops_eventstore.sqlstate.checkpoints and .timers)."""
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "projection_checkpoints",
        sa.Column("projection", sa.String(100), primary_key=True),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("unknown_events", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "timers",
        sa.Column("timer_id", sa.String(200), primary_key=True),
        sa.Column("aggregate_id", sa.String(100), nullable=False, index=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("data", sa.Text, nullable=False),
    )


def drop_checkpoint_and_timer_tables() -> None:
    """Reverts `create_checkpoint_and_timer_tables`."""
    from alembic import op

    op.drop_table("timers")
    op.drop_table("projection_checkpoints")


def create_parked_messages_table() -> None:
    """Migration step every service shares: the table of poison its consumers parked
    (careops_eventstore.sqlstate.parked), as of the revision that added it."""
    import sqlalchemy as sa
    from alembic import op

    row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "parked_messages",
        sa.Column("id", row_id, primary_key=True),
        sa.Column("consumer", sa.String(100), nullable=False, index=True),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.String(255), nullable=False, server_default=""),
        sa.Column("event_type", sa.String(200), nullable=False, server_default=""),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_parked_messages_table() -> None:
    """Reverts `create_parked_messages_table`."""
    from alembic import op

    op.drop_table("parked_messages")
