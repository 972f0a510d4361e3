"""Search over chunks: by meaning (vector store) and by keyword (Postgres full text), fused.

Query text → embedding → top candidates from the vector store with the filters; the same filters
on a full-text match (``ix_chunks_text_fts``) for what embeddings blur: names, product codes,
ticket numbers. The two rankings are fused with reciprocal rank fusion (Cormack et al., 2009:
``sum 1 / (RRF_K + rank)``), which needs no score calibration between the two sides, so a passage
both sides find comes first. Each hit carries its chunk, its interaction (time, source key and
link) and the persons and companies resolved for that interaction.

``api.services.search`` (HTTP API, MCP tools, demo) delegates here.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

import sqlalchemy as sa

from common import db
from common.settings import Settings
from embed_worker.stores import (SearchFilters, VectorStoreUnavailable, build_store, interaction_filter_sql,
                                 vector_literal)

log = logging.getLogger("payready.search")

#: The constant of reciprocal rank fusion; 60 is the paper's and everyone's default.
RRF_K = 60
#: Candidates taken from each side per requested hit, so fusion has something to reorder.
CANDIDATES_PER_HIT = 3
MIN_CANDIDATES = 30
MAX_K = 100
#: A query word in this many chunks is common: the keyword side ignores it (counted up to here only).
COMMON_WORD_CHUNKS = 1000


@dataclass
class SearchHit:
    chunk_id: str
    text: str
    score: float  # cosine similarity to the query (0 when the chunk has no vector yet)
    rank_score: float  # fused reciprocal-rank score: what the hits are ordered by
    matched_by: list[str]  # "vector", "keyword" or both
    interaction_id: int
    source: str
    source_type: str
    source_id: str
    kind: str
    title: Optional[str]
    occurred_at: Optional[str]  # ISO 8601
    url: Optional[str]
    speakers: list = field(default_factory=list)
    start_ms: Optional[int] = None
    end_ms: Optional[int] = None
    persons: list[dict] = field(default_factory=list)  # {"id", "name", "email"}
    companies: list[dict] = field(default_factory=list)  # {"id", "name", "domain"}

    def as_dict(self) -> dict:
        return asdict(self)


class SearchResults(list):
    """A list of :class:`SearchHit`; ``unavailable`` says why the vector side did not run."""

    unavailable: Optional[str] = None


def _as_tuple(values: Optional[Iterable[str]]) -> Optional[tuple[str, ...]]:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = tuple(v for v in values if v)
    return out or None


def rrf(rankings: dict[str, list[str]], k: int = RRF_K) -> list[tuple[str, float, list[str]]]:
    """Fuse ranked id lists: ``[(id, score, [names of the rankings that had it])]``, best first.

    Ties (same fused score) keep the order of the first ranking that has the id, then the id.
    """
    scores: dict[str, float] = {}
    seen_in: dict[str, list[str]] = {}
    first_pos: dict[str, tuple[int, int]] = {}
    for order, (name, ids) in enumerate(rankings.items()):
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            seen_in.setdefault(item, []).append(name)
            first_pos.setdefault(item, (order, rank))
    ranked = sorted(scores, key=lambda i: (-scores[i], first_pos[i], i))
    return [(i, scores[i], seen_in[i]) for i in ranked]


#: A query word: letters/digits, possibly joined by - . / ' inside (codes, O'Brien, v2.1).
_WORD_RE = re.compile(r"\w(?:[\w\-./']*\w)?")


def keyword_ranking(conn: sa.engine.Connection, query: str, filters: SearchFilters, limit: int) -> list[str]:
    """Chunk ids whose text contains any of the query's words, best ``ts_rank_cd`` first.

    Words are matched as written (``simple`` configuration: no stemming, so "PR-4410" and "Okafor"
    stay themselves); English stop words are dropped from the query, or "what did" would match
    every chunk. Each word is a phrase of its parts, so "ZX-9047" must appear as such and does not
    match "ZX-9470" through their shared "zx". Words found in ``COMMON_WORD_CHUNKS`` chunks or more
    are left to the vector side: ranking thousands of matches costs seconds and says little, while
    names and codes, where keywords help, are rare.
    """
    words = sorted(set(_WORD_RE.findall(query)))[:64]
    if not words:
        return []
    params: dict = {"words": words, "n": int(limit), "cap": COMMON_WORD_CHUNKS}
    where = interaction_filter_sql(filters, params)
    rows = conn.execute(sa.text(
        "WITH w AS (SELECT phraseto_tsquery('simple', w) AS tq FROM unnest(CAST(:words AS text[])) AS w "
        "WHERE numnode(phraseto_tsquery('english', w)) > 0 AND numnode(phraseto_tsquery('simple', w)) > 0), "
        "rare AS (SELECT tq FROM w WHERE (SELECT count(*) FROM (SELECT 1 FROM chunks c0 "
        "WHERE to_tsvector('simple'::regconfig, c0.text) @@ w.tq LIMIT :cap) AS hits) < :cap), "
        "q AS (SELECT CAST(string_agg('(' || CAST(tq AS text) || ')', ' | ') AS tsquery) AS tsq FROM rare) "
        "SELECT c.id::text AS id, ts_rank_cd(to_tsvector('simple'::regconfig, c.text), q.tsq) AS rank "
        "FROM q, chunks c JOIN interactions i ON i.id = c.interaction_id "
        f"WHERE q.tsq IS NOT NULL AND to_tsvector('simple'::regconfig, c.text) @@ q.tsq AND {' AND '.join(where)} "
        "ORDER BY rank DESC, c.id LIMIT :n"), params).all()
    return [r.id for r in rows]


def _hydrate(conn: sa.engine.Connection, ids: list[str], vector_sql: Optional[str], model: Optional[str]) -> dict:
    similarity = "NULL::float8"
    join = ""
    params: dict = {"ids": ids}
    if vector_sql is not None:
        similarity = "1 - (cv.embedding <=> CAST(:v AS vector))"
        join = "LEFT JOIN chunk_vectors cv ON cv.chunk_id = c.id AND cv.model = :model "
        params.update(v=vector_sql, model=model)
    rows = conn.execute(sa.text(
        f"SELECT c.id::text AS chunk_id, c.text, c.speakers, c.start_ms, c.end_ms, {similarity} AS similarity, "
        "i.id AS interaction_id, i.source, i.source_type, i.source_id, i.kind, i.title, i.occurred_at, i.url, "
        "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', p.id::text, 'name', p.display_name, "
        "'email', p.primary_email) ORDER BY p.display_name, p.id) FROM interaction_entities ie "
        "JOIN persons p ON p.id = ie.entity_id WHERE ie.interaction_id = i.id), '[]'::jsonb) AS persons, "
        "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', co.id::text, 'name', co.name, "
        "'domain', co.primary_domain) ORDER BY co.name, co.id) FROM interaction_entities ie "
        "JOIN companies co ON co.id = ie.entity_id WHERE ie.interaction_id = i.id), '[]'::jsonb) AS companies "
        f"FROM chunks c JOIN interactions i ON i.id = c.interaction_id {join}"
        "WHERE c.id = ANY(CAST(:ids AS uuid[]))"), params).mappings().all()
    return {r["chunk_id"]: r for r in rows}


def search(settings: Settings, query: str, *, k: int = 10, sources: Optional[Iterable[str]] = None,
           kinds: Optional[Iterable[str]] = None, entity_id: Optional[str] = None,
           since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None,
           keyword: bool = True) -> SearchResults:
    """The ``k`` passages best matching ``query``, with their interaction and resolved entities.

    Filters: ``sources`` (gong, slack, hubspot, salesforce), ``kinds`` (call, thread, note, email,
    ...), ``entity_id`` (a person or company: its interactions only), ``since`` (inclusive) and
    ``until`` (exclusive) on the interaction's time. Without a vector store the keyword side
    still answers and ``results.unavailable`` says why the semantic side did not.
    """
    from embed_worker.pipeline import model_tag, settings_embedder

    query = (query or "").strip()
    if not query:
        raise ValueError("the search query is empty")
    if not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}")
    if entity_id is not None:
        try:
            entity_id = str(uuid.UUID(str(entity_id)))
        except ValueError:
            raise ValueError("entity_id must be a UUID") from None
    embedder = settings_embedder(settings)
    filters = SearchFilters(sources=_as_tuple(sources), kinds=_as_tuple(kinds), entity_id=entity_id,
                            since=since, until=until, model=model_tag(embedder))
    n = max(MIN_CANDIDATES, CANDIDATES_PER_HIT * int(k))
    results = SearchResults()
    rankings: dict[str, list[str]] = {}
    vector = None
    store_scores: dict[str, float] = {}
    try:
        store = build_store(settings)
        with db.transaction(settings) as conn:
            store.check(conn)
            vector = embedder.embed([query])[0]
            hits = store.search(conn, vector, n, filters)
            rankings["vector"] = [h.chunk_id for h in hits]
            store_scores = {h.chunk_id: h.score for h in hits}
    except VectorStoreUnavailable as exc:
        results.unavailable = str(exc)
        log.warning("semantic search unavailable, keyword only: %s", exc)
    with db.transaction(settings) as conn:
        if keyword:
            rankings["keyword"] = keyword_ranking(conn, query, filters, n)
        # a few spare: a Weaviate hit may name a chunk Postgres no longer has (deleted since)
        fused = rrf(rankings)[: 2 * int(k)]
        if not fused:
            return results
        has_pg_vectors = vector is not None and db.vector_ready(conn)
        rows = _hydrate(conn, [i for i, _, _ in fused], vector_literal(vector) if has_pg_vectors else None,
                        filters.model)
    for chunk_id, fused_score, matched_by in fused:
        r = rows.get(chunk_id)
        if r is None:  # deleted since it was indexed
            continue
        if len(results) == int(k):
            break
        results.append(SearchHit(
            chunk_id=chunk_id, text=r["text"], score=round(float(r["similarity"] if r["similarity"] is not None
                                                     else store_scores.get(chunk_id, 0.0)), 4),
            rank_score=round(fused_score, 6), matched_by=matched_by, interaction_id=r["interaction_id"],
            source=r["source"], source_type=r["source_type"], source_id=r["source_id"], kind=r["kind"],
            title=r["title"], occurred_at=r["occurred_at"].isoformat() if r["occurred_at"] else None,
            url=r["url"], speakers=list(r["speakers"] or []), start_ms=r["start_ms"], end_ms=r["end_ms"],
            persons=list(r["persons"]), companies=list(r["companies"])))
    return results
