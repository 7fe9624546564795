"""Initial customer read models: customers, tags, purchases, activity, 360 facts, checkpoints.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from careops_platform.db import create_checkpoint_and_timer_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ENTRY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    create_checkpoint_and_timer_tables()
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("registered_sequence", sa.BigInteger, nullable=False, unique=True),
        sa.Column("key_version", sa.Integer, nullable=True),
        sa.Column("sealed_nonce", sa.LargeBinary, nullable=True),
        sa.Column("sealed_personal", sa.LargeBinary, nullable=True),
        sa.Column("email_hash", sa.String(64), nullable=True, index=True),
        sa.Column("phone_hash", sa.String(64), nullable=True, index=True),
        sa.Column("locale", sa.String(40), nullable=False),
        sa.Column("consent_marketing", sa.Boolean, nullable=False),
        sa.Column("consent_profiling", sa.Boolean, nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("recency_score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("frequency_score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("monetary_score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("churn_risk", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("purchase_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("forgotten", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_customers_tier", "customers", ["tier", "registered_sequence"])
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("tag", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "tag"),
    )
    op.create_index("ix_customer_tags_tag", "customer_tags", ["tag", "customer_id"])
    op.create_table(
        "customer_purchases",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "order_id"),
    )
    op.create_index(
        "ix_customer_purchases_at", "customer_purchases", ["customer_id", "purchased_at"]
    )
    op.create_table(
        "customer_activity",
        sa.Column("entry_id", ENTRY_ID, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_customer_activity", "customer_activity", ["customer_id", "at"])
    op.create_table(
        "customer_tickets",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_customer_tickets_customer", "customer_tickets", ["customer_id", "status"])
    op.create_index("ix_customer_tickets_opened", "customer_tickets", ["customer_id", "opened_at"])
    op.create_table(
        "customer_ticket_activity",
        sa.Column("entry_id", ENTRY_ID, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_customer_ticket_activity", "customer_ticket_activity", ["customer_id", "at"]
    )
    op.create_table(
        "customer_incidents",
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "customer_id"),
    )
    op.create_index("ix_customer_incidents", "customer_incidents", ["customer_id", "at"])
    op.create_table(
        "customer_surveys",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("csat", sa.Integer, nullable=False),
        sa.Column("nps", sa.Integer, nullable=True),
        sa.Column("emotion", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_customer_surveys", "customer_surveys", ["customer_id", "submitted_at"])
