"""Vector stores behind one interface. pgvector lives in the domain's Postgres schema.

Without pgvector, :class:`PgVectorStore` raises :class:`VectorStoreUnavailable` naming what is
missing; chunks then stay pending and are embedded once the extension exists and
``payready migrate`` has added ``chunk_vectors``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import numpy as np
import sqlalchemy as sa


class VectorStoreUnavailable(RuntimeError):
    pass


@dataclass
class VectorRow:
    chunk_id: str
    vector: np.ndarray
    model: str
    content_hash: str


@dataclass
class Hit:
    chunk_id: str
    score: float  # cosine similarity, 1 = same direction


class VectorStore(Protocol):
    def upsert(self, conn: sa.engine.Connection, rows: Sequence[VectorRow]) -> None: ...
    def search(self, conn: sa.engine.Connection, vector: np.ndarray, k: int,
               sources: Optional[list[str]] = None) -> list[Hit]: ...


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vector.tolist()) + "]"


class PgVectorStore:
    """``chunk_vectors`` with an HNSW cosine index, written in the caller's transaction."""

    def check(self, conn: sa.engine.Connection) -> None:
        if not conn.execute(sa.text("SELECT to_regclass('chunk_vectors') IS NOT NULL")).scalar():
            raise VectorStoreUnavailable(
                "pgvector is not available in this Postgres (no chunk_vectors table): vector search and "
                "the embed phase are off; install pgvector and run `payready migrate`, or set "
                "PAYREADY_VECTOR_STORE=weaviate")

    def upsert(self, conn: sa.engine.Connection, rows: Sequence[VectorRow]) -> None:
        if not rows:
            return
        self.check(conn)
        conn.execute(sa.text(
            "INSERT INTO chunk_vectors (chunk_id, embedding, model, content_hash, embedded_at) "
            "VALUES (:id, CAST(:v AS vector), :m, :h, now()) ON CONFLICT (chunk_id) DO UPDATE SET "
            "embedding = EXCLUDED.embedding, model = EXCLUDED.model, content_hash = EXCLUDED.content_hash, "
            "embedded_at = now()"),
            [{"id": r.chunk_id, "v": _literal(r.vector), "m": r.model, "h": r.content_hash} for r in rows])

    def search(self, conn: sa.engine.Connection, vector: np.ndarray, k: int,
               sources: Optional[list[str]] = None) -> list[Hit]:
        self.check(conn)
        where = "WHERE i.source = ANY(:sources)" if sources else ""
        rows = conn.execute(sa.text(
            "SELECT cv.chunk_id, 1 - (cv.embedding <=> CAST(:v AS vector)) AS score FROM chunk_vectors cv "
            f"JOIN chunks c ON c.id = cv.chunk_id JOIN interactions i ON i.id = c.interaction_id {where} "
            "ORDER BY cv.embedding <=> CAST(:v AS vector) LIMIT :k"),
            {"v": _literal(vector), "k": k, "sources": sources}).all()
        return [Hit(str(r.chunk_id), float(r.score)) for r in rows]


def build_store(kind: str) -> VectorStore:
    if kind == "pgvector":
        return PgVectorStore()
    raise VectorStoreUnavailable(f"vector store {kind!r} arrives with the embeddings issue; use pgvector")
