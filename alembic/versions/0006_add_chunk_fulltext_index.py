"""Full-text index on chunk text: the keyword side of hybrid search (names, product codes).

An expression GIN index rather than a stored tsvector column: ingest writes chunks far more often
than search reads the ranking, and only the rows a query matches need their tsvector recomputed.
The ``simple`` configuration keeps names and codes as written (no stemming, no stop words that
could swallow a surname like "Will"); the query side removes what matches too much.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_chunks_text_fts ON chunks USING gin (to_tsvector('simple'::regconfig, text))")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_chunks_text_fts")
