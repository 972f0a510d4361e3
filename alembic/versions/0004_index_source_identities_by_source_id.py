"""Index source_identities by (source, source_id): the per-batch identity preload's lookup.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_source_identities_source_id", "source_identities", ["source", "source_id"])


def downgrade() -> None:
    op.drop_index("ix_source_identities_source_id", table_name="source_identities")
