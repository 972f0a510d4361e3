"""Phase 5: embed new or changed chunks in batches and store their vectors.

Workers claim batches with ``FOR UPDATE SKIP LOCKED``, so any number of embed processes share
the work without overlap. The vector and the chunk's ``embedded_hash`` commit together: that is
the vector checkpoint, and a crash re-embeds at most the batch in flight.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa

import redis

from common import db, embedded, metrics, pii, ratelimit
from common.models import EMBEDDING_DIM
from common.settings import Settings
from embed_worker.embedders import Embedder, build_embedder
from embed_worker.stores import VectorRow, VectorStoreUnavailable, build_store

log = logging.getLogger("payready.embed")


@dataclass
class EmbedStats:
    chunks: int = 0
    refused: int = 0  # vectors the store refused (per-object errors); their chunks stay pending
    batches: int = 0
    embed_seconds: float = 0.0  # the model alone
    claim_seconds: float = 0.0  # reading the batch (SKIP LOCKED) and masking PII
    store_seconds: float = 0.0  # writing vectors and the checkpoint, commit included
    seconds: float = 0.0
    unavailable: str = ""


#: OpenAI embeddings, shared by every embed worker of the domain (Redis GCRA bucket): the
#: usage-tier-1 request limit of the embedding models, 3,000 requests per minute.
OPENAI_EMBEDDINGS_LIMIT = ratelimit.Limit("openai_embeddings", 3000, 60, burst=50)


@functools.lru_cache(maxsize=4)
def embedder_for(kind: str, api_key: str | None, base_url: str | None, model: str,
                 redis_url: str | None = None, key_prefix: str | None = None) -> Embedder:
    """One embedder per process: loading the model costs about a second."""
    if kind == "openai":
        limiter = None
        if redis_url and key_prefix:
            shared = ratelimit.RateLimiter(redis.Redis.from_url(redis_url), key_prefix)

            def limiter() -> None:
                shared.acquire(OPENAI_EMBEDDINGS_LIMIT)
        return build_embedder("openai", api_key=api_key, base_url=base_url, model=model, dim=EMBEDDING_DIM,
                              rate_limiter=limiter)
    return build_embedder("local")


def settings_embedder(settings: Settings) -> Embedder:
    redis_url = None
    if settings.embedder == "openai":
        redis_url = settings.redis_url or embedded.resolve_urls(settings).redis_url
    return embedder_for(settings.embedder, settings.openai_api_key, settings.openai_base_url,
                        settings.openai_embedding_model, redis_url, settings.key_prefix)


def model_tag(embedder: Embedder) -> str:
    """What every vector records about its model: name and version (the pinned file's hash)."""
    return f"{embedder.name}@{embedder.version}"


_CLAIM = (
    "SELECT c.id, c.text, c.content_hash, c.interaction_id, i.source, i.kind, i.occurred_at, "
    "ARRAY(SELECT ie.entity_id::text FROM interaction_entities ie WHERE ie.interaction_id = c.interaction_id "
    "ORDER BY 1) AS entity_ids "
    "FROM chunks c JOIN interactions i ON i.id = c.interaction_id "
    "WHERE c.embedded_hash IS DISTINCT FROM c.content_hash AND NOT (c.id = ANY(CAST(:refused AS uuid[]))) "
    "ORDER BY c.interaction_id, c.ordinal LIMIT :n FOR UPDATE OF c SKIP LOCKED")


def embed_pending(settings: Settings, max_batches: int | None = None,
                  heartbeat: Callable[[], None] = lambda: None) -> EmbedStats:
    """Embed pending chunks until none are left (or ``max_batches``); safe to run in parallel.

    Each batch is one transaction: claim (SKIP LOCKED), embed, store the vectors, advance the
    chunks' ``embedded_hash``. A crash anywhere before the commit leaves the batch pending, and the
    next worker re-embeds it into the same ids.
    """
    started = time.perf_counter()
    stats = EmbedStats()
    engine = db.engine_for(settings)
    try:
        store = build_store(settings)
        with engine.connect() as conn:
            store.check(conn)
    except VectorStoreUnavailable as exc:
        stats.unavailable = str(exc)
        log.warning("embed skipped: %s", exc)
        return stats
    embedder = settings_embedder(settings)
    tag = model_tag(embedder)
    refused: list[str] = []  # chunks the store refused in this call: left pending for a later run
    while max_batches is None or stats.batches < max_batches:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            batch = conn.execute(sa.text(_CLAIM), {"n": settings.embed_batch_size, "refused": refused}).all()
            if not batch:
                break
            # PII never reaches a vector or a vector store (DESIGN §10): mask before embedding.
            texts = [pii.mask(r.text) for r in batch]
            t1 = time.perf_counter()
            stats.claim_seconds += t1 - t0
            vectors = embedder.embed(texts)
            t2 = time.perf_counter()
            stats.embed_seconds += t2 - t1
            rows = [VectorRow(str(r.id), v, tag, r.content_hash, interaction_id=r.interaction_id,
                              source=r.source, kind=r.kind, occurred_at=r.occurred_at,
                              entity_ids=tuple(r.entity_ids or ()), text=t)
                    for r, v, t in zip(batch, vectors, texts)]
            errors = store.upsert(conn, rows)
            failed = {e.chunk_id for e in errors}
            refused.extend(failed)
            done = [r for r in batch if str(r.id) not in failed]
            if done:
                conn.execute(sa.text(
                    "UPDATE chunks c SET embedded_hash = v.h, embedding_model = :m, embedded_at = now() "
                    "FROM unnest(CAST(:ids AS uuid[]), CAST(:hs AS text[])) AS v(id, h) WHERE c.id = v.id"),
                    {"m": tag, "ids": [str(r.id) for r in done], "hs": [r.content_hash for r in done]})
        stats.store_seconds += time.perf_counter() - t2
        stats.chunks += len(done)
        stats.refused += len(failed)
        stats.batches += 1
        heartbeat()  # the run is alive: recovery must not take a long embed phase for dead
        metrics.CHUNKS_EMBEDDED.inc(len(done))
    stats.seconds = time.perf_counter() - started
    log.info("embed chunks=%d refused=%d batches=%d embed_ms=%.0f total_ms=%.0f", stats.chunks, stats.refused,
             stats.batches, stats.embed_seconds * 1000, stats.seconds * 1000)
    return stats


def mark_for_reembed(settings: Settings, *, everything: bool = False) -> int:
    """Make chunks pending again: those embedded by another model than the configured one, or all.

    Search only compares vectors of the configured model, so until the next embed phase has run
    the re-marked chunks are out of semantic search rather than ranked by incomparable vectors.
    """
    tag = model_tag(settings_embedder(settings))
    with db.transaction(settings) as conn:
        result = conn.execute(sa.text(
            "UPDATE chunks SET embedded_hash = NULL WHERE embedded_hash IS NOT NULL"
            + ("" if everything else " AND embedding_model IS DISTINCT FROM :m")), {"m": tag})
        return int(result.rowcount or 0)


def embed_command(settings: Settings, *, reembed: bool = False, everything: bool = False) -> dict:
    """``payready embed``: optionally re-mark chunks (model change), then embed what is pending."""
    marked = mark_for_reembed(settings, everything=everything) if reembed else 0
    stats = embed_pending(settings)
    return {"marked_for_reembed": marked, "model": model_tag(settings_embedder(settings)), **stats.__dict__}
