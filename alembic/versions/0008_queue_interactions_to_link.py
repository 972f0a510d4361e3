"""Interactions whose entity links may have changed since the last resolve run, queued by triggers.

A link (``interaction_entities``) is derived from an interaction's participants, turn speakers and
associated companies. Triggers on those three tables (rows inserted, changed or deleted) and on a
changed ``interactions.occurred_at`` queue the interaction in the writing transaction, whoever the
writer is; the resolve run takes the queue, adds the interactions of identities whose mapping
changed and of entities whose head changed, and re-derives those alone. Re-deriving every link on
every run cost ~2 s at 450k links and grew with the history, not with what changed. Existing
interactions are queued once here, so the first run after the upgrade re-derives them all.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CHILDREN = ("participants", "interaction_turns", "interaction_companies")


def upgrade() -> None:
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar()
    op.create_table(
        "interactions_to_link",
        sa.Column("interaction_id", sa.BigInteger, sa.ForeignKey("interactions.id", ondelete="CASCADE"),
                  primary_key=True),
    )
    # statement-level: one insert per statement, whatever its size (a batch writes thousands of
    # turns in one); rows deleted with their interaction (cascade) queue nothing
    op.execute(f"""
        CREATE FUNCTION queue_children_for_linking() RETURNS trigger LANGUAGE plpgsql
        SET search_path = "{schema}" AS $$
        BEGIN
            INSERT INTO interactions_to_link (interaction_id)
            SELECT DISTINCT c.interaction_id FROM written c
             WHERE EXISTS (SELECT 1 FROM interactions i WHERE i.id = c.interaction_id)
            ON CONFLICT DO NOTHING;
            RETURN NULL;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION queue_interaction_for_linking() RETURNS trigger LANGUAGE plpgsql
        SET search_path = "{schema}" AS $$
        BEGIN
            INSERT INTO interactions_to_link (interaction_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END $$""")
    for table in _CHILDREN:
        for event, rows in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            op.execute(f"CREATE TRIGGER link_after_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING {rows} TABLE AS written FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION queue_children_for_linking()")
    op.execute("CREATE TRIGGER link_after_time_change AFTER UPDATE OF occurred_at ON interactions FOR EACH ROW "
               "WHEN (OLD.occurred_at IS DISTINCT FROM NEW.occurred_at) "
               "EXECUTE FUNCTION queue_interaction_for_linking()")
    op.execute("INSERT INTO interactions_to_link (interaction_id) SELECT id FROM interactions")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS link_after_time_change ON interactions")
    for table in _CHILDREN:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS link_after_{event} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS queue_interaction_for_linking()")
    op.execute("DROP FUNCTION IF EXISTS queue_children_for_linking()")
    op.drop_table("interactions_to_link")
