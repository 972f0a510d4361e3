"""The matching rules (and phone region) the stored entity mappings were made by: one row.

A routine resolve run scores only pairs that involve a new or changed identity, so mappings made
by older rules stay as they were: two people joined by a rule since fixed stay joined. The resolve
run compares this row with its own rules and, when they differ, re-clusters every identity once
(``resolve_worker/entities.py``), then records the rules it applied, in the same transaction as
the mappings. Absent (a database resolved before this revision): the next run is a full one.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resolve_rules_applied",
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("singleton", name="resolve_rules_applied_one_row"),
    )


def downgrade() -> None:
    op.drop_table("resolve_rules_applied")
