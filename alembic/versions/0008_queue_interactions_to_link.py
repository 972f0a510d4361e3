"""Interactions whose entity links may have changed since the last resolve run (a queue).

A link (``interaction_entities``) is derived from an interaction's participants, turn speakers and
associated companies. The ingest writer queues every interaction it writes, in the writing
transaction (``ingest_worker.upserts.queue_for_linking``); the resolve run takes the queue, adds
the interactions of identities whose mapping changed and of entities whose head changed, and
re-derives those alone. Re-deriving every link on every run cost ~2 s at 450k links and grew with
the history, not with what changed. Existing interactions are queued once here, so the first run
after the upgrade re-derives them all.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interactions_to_link",
        # no foreign key: its check per queued row cost the ingest writer ~0.5 Postgres CPU-s per
        # 100k records, and an id whose interaction is gone finds nothing to link (the queue is
        # emptied by every run)
        sa.Column("interaction_id", sa.BigInteger, primary_key=True),
    )
    op.execute("INSERT INTO interactions_to_link (interaction_id) SELECT id FROM interactions")


def downgrade() -> None:
    op.drop_table("interactions_to_link")
