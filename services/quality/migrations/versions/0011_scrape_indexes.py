"""Indexes for a /metrics scrape: the survey counts per channel, csat and nps and the customer
messages per channel and emotion read from an index alone, in group order (no sort of every
row), and the yes/no answers found without walking the scored ones. No data changes: nothing
to rebuild.

Revision ID: 0011_scrape_indexes
"""

from alembic import op

revision = "0011_scrape_indexes"
down_revision = "0010_sla_policy_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_quality_surveys_scores",
        "quality_surveys",
        ["channel", "csat", "nps", "submitted_at", "ticket_opened_at"],
    )
    op.create_index(
        "ix_quality_customer_emotions_channel",
        "quality_customer_emotions",
        ["channel", "emotion"],
    )
    op.create_index(
        "ix_quality_survey_answers_kind",
        "quality_survey_answers",
        ["kind", "template_id", "question_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_quality_survey_answers_kind", "quality_survey_answers")
    op.drop_index("ix_quality_customer_emotions_channel", "quality_customer_emotions")
    op.drop_index("ix_quality_surveys_scores", "quality_surveys")
