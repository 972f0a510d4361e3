"""Add chunk_vectors (pgvector, HNSW cosine) where the vector extension is available.

On a Postgres without pgvector this revision is a recorded no-op: the system runs, and the
pgvector store reports that vector search is unavailable. Installing pgvector later and running
`payready migrate --vectors` (downgrade to 0001, upgrade to head) adds the table.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from common.db import has_pgvector

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if not has_pgvector(bind):
        return
    # The extension is database-wide and lives in public, shared by every domain schema.
    op.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
    op.create_table(
        "chunk_vectors",
        sa.Column("chunk_id", postgresql.UUID(as_uuid=True),
                  sa.ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("embedded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_chunk_vectors_hnsw", "chunk_vectors", ["embedding"], postgresql_using="hnsw",
                    postgresql_with={"m": 16, "ef_construction": 64},
                    postgresql_ops={"embedding": "vector_cosine_ops"})


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS chunk_vectors")
