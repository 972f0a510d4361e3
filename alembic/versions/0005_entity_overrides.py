"""Manual entity-resolution decisions (merge, split, pin), applied by every later resolve run.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entity_overrides",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_id", UUID(as_uuid=True), nullable=False),
        sa.Column("identity_keys", JSONB, server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("apart_keys", JSONB, server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("actor", sa.String(128), server_default="cli", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("action IN ('merge','split','pin')", name="entity_overrides_action_valid"),
        sa.Index("ix_entity_overrides_entity", "entity_id"),
    )


def downgrade() -> None:
    op.drop_table("entity_overrides")
