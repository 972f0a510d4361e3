"""Vector stores behind one interface: pgvector (default, in the domain's Postgres schema) and
Weaviate (scale-out, :mod:`embed_worker.weaviate_store`).

Every store is written inside the embed phase's Postgres transaction: pgvector in that very
transaction, Weaviate just before it commits. Either way the chunk's ``embedded_hash`` (the vector
checkpoint) commits only after its vector is stored, and a re-import after a crash writes the same
ids again, so nothing is lost or doubled.

Without pgvector, :class:`PgVectorStore` raises :class:`VectorStoreUnavailable` naming what is
missing; chunks then stay pending and are embedded once the extension exists and
``payready migrate`` has added ``chunk_vectors``.
"""
from __future__ import annotations

import datetime as dt
import weakref
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

import numpy as np
import sqlalchemy as sa

from common.settings import Settings


class VectorStoreUnavailable(RuntimeError):
    pass


@dataclass
class VectorRow:
    """One chunk's vector with what a store needs to filter on without asking Postgres."""

    chunk_id: str
    vector: np.ndarray
    model: str
    content_hash: str
    interaction_id: Optional[int] = None
    source: Optional[str] = None
    kind: Optional[str] = None
    occurred_at: Optional[dt.datetime] = None
    entity_ids: tuple[str, ...] = ()
    text: str = ""  # PII-masked, as embedded


@dataclass(frozen=True)
class SearchFilters:
    sources: Optional[tuple[str, ...]] = None
    kinds: Optional[tuple[str, ...]] = None
    entity_id: Optional[str] = None
    since: Optional[dt.datetime] = None  # inclusive
    until: Optional[dt.datetime] = None  # exclusive
    # Only vectors of this model: vectors of two models are not comparable, even at the same size.
    model: Optional[str] = None


@dataclass
class Hit:
    chunk_id: str
    score: float  # cosine similarity, 1 = same direction


@dataclass
class ObjectError:
    """A vector the store refused; its chunk stays pending and is retried by a later run."""

    chunk_id: str
    message: str


class VectorStore(Protocol):
    name: str

    def check(self, conn: sa.engine.Connection) -> None: ...
    def upsert(self, conn: sa.engine.Connection, rows: Sequence[VectorRow]) -> list[ObjectError]: ...
    def search(self, conn: sa.engine.Connection, vector: np.ndarray, k: int,
               filters: SearchFilters = SearchFilters()) -> list[Hit]: ...
    def count(self, conn: sa.engine.Connection) -> int: ...


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def interaction_filter_sql(filters: SearchFilters, params: dict) -> list[str]:
    """WHERE terms on ``interactions i`` for the filters (binding their values into ``params``);
    shared by the vector store and the keyword side of search, so both filter alike."""
    where = ["NOT i.deleted"]
    if filters.sources:
        where.append("i.source = ANY(:sources)")
        params["sources"] = list(filters.sources)
    if filters.kinds:
        where.append("i.kind = ANY(:kinds)")
        params["kinds"] = list(filters.kinds)
    if filters.since:
        where.append("i.occurred_at >= :since")
        params["since"] = filters.since
    if filters.until:
        where.append("i.occurred_at < :until")
        params["until"] = filters.until
    if filters.entity_id:
        where.append("EXISTS (SELECT 1 FROM interaction_entities ie WHERE ie.interaction_id = i.id "
                     "AND ie.entity_id = CAST(:eid AS uuid))")
        params["eid"] = filters.entity_id
    return where


@dataclass
class PgVectorStore:
    """``chunk_vectors`` with an HNSW cosine index, written in the caller's transaction."""

    name: str = "pgvector"
    # Candidates the HNSW scan keeps (at least 2k). 200: recall@10 0.85 vs 0.74 at 64 on the
    # 100k benchmark, with no latency cost visible next to the query embedding (docs/benchmarks.md).
    ef_search: int = 200
    _checked: weakref.WeakSet = field(default_factory=weakref.WeakSet, repr=False)

    def check(self, conn: sa.engine.Connection) -> None:
        # Engines are per (URL, domain schema); once the table is there it stays, so a search pays
        # this round trip once per engine, not per query.
        if conn.engine in self._checked:
            return
        if not conn.execute(sa.text("SELECT to_regclass('chunk_vectors') IS NOT NULL")).scalar():
            raise VectorStoreUnavailable(
                "pgvector is not available in this Postgres (no chunk_vectors table): vector search and "
                "the embed phase are off; install pgvector and run `payready migrate`, or set "
                "PAYREADY_VECTOR_STORE=weaviate")
        self._checked.add(conn.engine)

    def upsert(self, conn: sa.engine.Connection, rows: Sequence[VectorRow]) -> list[ObjectError]:
        if not rows:
            return []
        self.check(conn)
        # One statement per batch (arrays, not executemany): the database stays a small share of
        # the embed phase next to the model.
        conn.execute(sa.text(
            "INSERT INTO chunk_vectors (chunk_id, embedding, model, content_hash, embedded_at) "
            "SELECT v.id, CAST(v.vec AS vector), v.m, v.h, now() FROM unnest("
            "CAST(:ids AS uuid[]), CAST(:vecs AS text[]), CAST(:ms AS text[]), CAST(:hs AS text[])) "
            "AS v(id, vec, m, h) ON CONFLICT (chunk_id) DO UPDATE SET embedding = EXCLUDED.embedding, "
            "model = EXCLUDED.model, content_hash = EXCLUDED.content_hash, embedded_at = now()"),
            {"ids": [r.chunk_id for r in rows], "vecs": [vector_literal(r.vector) for r in rows],
             "ms": [r.model for r in rows], "hs": [r.content_hash for r in rows]})
        return []

    def search(self, conn: sa.engine.Connection, vector: np.ndarray, k: int,
               filters: SearchFilters = SearchFilters()) -> list[Hit]:
        self.check(conn)
        params: dict = {"v": vector_literal(vector), "k": int(k)}
        where = interaction_filter_sql(filters, params)
        if filters.model:
            where.append("cv.model = :model")
            params["model"] = filters.model
        distance = "cv.embedding <=> CAST(:v AS vector)"
        if filters.entity_id:
            # One entity's chunks are few: exact distances over them beat walking the graph for
            # neighbours that mostly belong to someone else (``+ 0`` keeps the index out).
            order = f"({distance}) + 0"
        else:
            order = distance
            # pgvector 0.8: keep scanning the graph until k rows pass the filters.
            # Both settings in one round trip; ``true`` = local to this transaction, like SET LOCAL.
            conn.execute(sa.text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                                 "set_config('hnsw.ef_search', :ef, true)"),
                         {"ef": str(max(self.ef_search, 2 * int(k)))})
        rows = conn.execute(sa.text(
            f"WITH nearest AS MATERIALIZED (SELECT cv.chunk_id, {distance} AS distance FROM chunk_vectors cv "
            "JOIN chunks c ON c.id = cv.chunk_id JOIN interactions i ON i.id = c.interaction_id "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :k) "
            # relaxed_order may return neighbours slightly out of order: sort the few we got.
            "SELECT chunk_id, 1 - distance AS score FROM nearest ORDER BY distance, chunk_id"),
            params).all()
        return [Hit(str(r.chunk_id), float(r.score)) for r in rows]

    def count(self, conn: sa.engine.Connection) -> int:
        self.check(conn)
        return int(conn.execute(sa.text("SELECT count(*) FROM chunk_vectors")).scalar())


def build_store(settings_or_kind: Settings | str) -> VectorStore:
    """The store the settings name. A bare kind (``"pgvector"``) is accepted for pgvector only."""
    kind = settings_or_kind if isinstance(settings_or_kind, str) else settings_or_kind.vector_store
    if kind == "pgvector":
        return PgVectorStore()
    if kind == "weaviate":
        if isinstance(settings_or_kind, str):
            raise VectorStoreUnavailable("the weaviate store needs settings (WEAVIATE_URL)")
        from embed_worker.weaviate_store import shared_store

        return shared_store(settings_or_kind)
    raise VectorStoreUnavailable(f"unknown vector store {kind!r}; expected 'pgvector' or 'weaviate'")
