"""Celery entry points of the embed worker (queue ``<domain>.embed``): phase 5.

Idempotency key: the chunk id with its content hash; a chunk whose text did not change is never
embedded again. Several embed tasks run in parallel, sharing batches through SKIP LOCKED.
"""
from __future__ import annotations

from sqlalchemy.exc import OperationalError

from common import celery_app as ca
from common import runs, settings as settings_mod
from embed_worker import pipeline


@ca.task(ca.EMBED_PENDING, retry_on=(OperationalError,))
def embed_pending(self, *, run_id: str, slot: int = 0, part: int = 1, chunks_before: int = 0,
                  seconds_before: float = 0.0) -> dict:
    """Embed pending chunks, at most PAYREADY_EMBED_BATCHES_PER_TASK batches per task; while some
    may remain, the task replaces itself with its next part (same place in the canvas), so no task
    outlives the broker's visibility timeout."""
    s = settings_mod.get()
    budget = s.embed_batches_per_task
    stats = pipeline.embed_pending(s, max_batches=budget, heartbeat=lambda: runs.heartbeat(s, run_id))
    chunks, seconds = chunks_before + stats.chunks, round(seconds_before + stats.seconds, 3)
    if not stats.unavailable and stats.batches >= budget:
        runs.phase(s, run_id, f"embed:{slot}", status="running", chunks=chunks, parts=part)
        raise self.replace(ca.app.signature(ca.EMBED_PENDING, kwargs={
            "run_id": run_id, "slot": slot, "part": part + 1, "chunks_before": chunks,
            "seconds_before": seconds}, immutable=True))
    status = "skipped" if stats.unavailable else "done"
    runs.phase(s, run_id, f"embed:{slot}", status=status, chunks=chunks, batches=stats.batches, parts=part,
               seconds=seconds, embed_seconds=round(stats.embed_seconds, 3), refused=stats.refused,
               reason=stats.unavailable or None)
    return {**stats.__dict__, "chunks": chunks, "parts": part}
