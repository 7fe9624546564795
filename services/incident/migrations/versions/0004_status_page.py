"""Status page: the public status page's read model (open and recent incidents' statements).

Revision ID: status_page
"""

import sqlalchemy as sa
from alembic import op

revision = "status_page"
down_revision = "drills"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_incidents",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("declared_sequence", sa.BigInteger, nullable=False, unique=True),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_status_incidents_listed", "status_incidents", ["published", "open", "resolved_at"]
    )
    op.create_table(
        "status_updates",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("headline", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("headline_en", sa.String(200), nullable=False),
        sa.Column("text_en", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("status_updates")
    op.drop_index("ix_status_incidents_listed", "status_incidents")
    op.drop_table("status_incidents")
