"""The manual decisions the stored mappings apply, beside their rules: a fingerprint of their ids.

A routine resolve run with nothing to do (no new or changed identity, no new decision, the same
rules) used to load and match every identity to find that out: ~5 s at 100k identities, on every
periodic sync. The run now compares this fingerprint and the rules with its own and looks for
unresolved identities first; when nothing differs it only links queued interactions
(``resolve_worker/entities.py``). Null (a database resolved before this revision): the next run
matches as before, then records it.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("resolve_rules_applied", sa.Column("overrides", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("resolve_rules_applied", "overrides")
