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

from common import db, metrics, pii
from common.settings import Settings
from embed_worker.embedders import Embedder, build_embedder
from embed_worker.stores import VectorRow, VectorStoreUnavailable, build_store

log = logging.getLogger("payready.embed")


@dataclass
class EmbedStats:
    chunks: int = 0
    batches: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0
    unavailable: str = ""


@functools.lru_cache(maxsize=4)
def embedder_for(kind: str, api_key: str | None, base_url: str | None, model: str) -> Embedder:
    """One embedder per process: loading the model costs about a second."""
    if kind == "openai":
        return build_embedder("openai", api_key=api_key, base_url=base_url, model=model, dim=384)
    return build_embedder("local")


def settings_embedder(settings: Settings) -> Embedder:
    return embedder_for(settings.embedder, settings.openai_api_key, settings.openai_base_url,
                        settings.openai_embedding_model)


def embed_pending(settings: Settings, max_batches: int | None = None,
                  heartbeat: Callable[[], None] = lambda: None) -> EmbedStats:
    """Embed pending chunks until none are left (or ``max_batches``); safe to run in parallel."""
    started = time.perf_counter()
    stats = EmbedStats()
    store = build_store(settings.vector_store)
    engine = db.engine_for(settings)
    try:
        with engine.connect() as conn:
            store.check(conn)
    except VectorStoreUnavailable as exc:
        stats.unavailable = str(exc)
        log.warning("embed skipped: %s", exc)
        return stats
    embedder = settings_embedder(settings)
    model_tag = f"{embedder.name}@{embedder.version}"
    while max_batches is None or stats.batches < max_batches:
        with engine.begin() as conn:
            batch = conn.execute(sa.text(
                "SELECT id, text, content_hash FROM chunks WHERE embedded_hash IS DISTINCT FROM content_hash "
                "ORDER BY interaction_id, ordinal LIMIT :n FOR UPDATE SKIP LOCKED"),
                {"n": settings.embed_batch_size}).all()
            if not batch:
                break
            t0 = time.perf_counter()
            # PII never reaches a vector (DESIGN §10): mask before embedding.
            vectors = embedder.embed([pii.mask(r.text) for r in batch])
            stats.embed_seconds += time.perf_counter() - t0
            store.upsert(conn, [VectorRow(str(r.id), v, model_tag, r.content_hash) for r, v in zip(batch, vectors)])
            conn.execute(sa.text(
                "UPDATE chunks SET embedded_hash = :h, embedding_model = :m, embedded_at = now() WHERE id = :id"),
                [{"h": r.content_hash, "m": model_tag, "id": r.id} for r in batch])
        stats.chunks += len(batch)
        stats.batches += 1
        heartbeat()  # the run is alive: recovery must not take a long embed phase for dead
        metrics.CHUNKS_EMBEDDED.inc(len(batch))
    stats.seconds = time.perf_counter() - started
    log.info("embed chunks=%d batches=%d embed_ms=%.0f total_ms=%.0f", stats.chunks, stats.batches,
             stats.embed_seconds * 1000, stats.seconds * 1000)
    return stats
