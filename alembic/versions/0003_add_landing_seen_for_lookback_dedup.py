"""Add landing_seen: raw ids delivered inside the Airbyte look-back window (boundary dedup).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "landing_seen",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("stream", sa.String(length=128), nullable=False),
        sa.Column("raw_id", sa.String(length=128), nullable=False),
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "stream", "raw_id"),
    )
    op.create_index("ix_landing_seen_window", "landing_seen", ["source", "stream", "extracted_at"])


def downgrade() -> None:
    op.drop_index("ix_landing_seen_window", table_name="landing_seen")
    op.drop_table("landing_seen")
