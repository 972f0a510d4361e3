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
def embed_pending(self, *, run_id: str, slot: int = 0) -> dict:
    s = settings_mod.get()
    stats = pipeline.embed_pending(s, heartbeat=lambda: runs.heartbeat(s, run_id))
    status = "skipped" if stats.unavailable else "done"
    runs.phase(s, run_id, f"embed:{slot}", status=status, chunks=stats.chunks, batches=stats.batches,
               seconds=round(stats.seconds, 3), embed_seconds=round(stats.embed_seconds, 3),
               reason=stats.unavailable or None)
    return stats.__dict__
