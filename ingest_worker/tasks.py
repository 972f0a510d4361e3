"""Celery entry points of the ingest worker (queue ``<domain>.ingest``): phases 1–3.

Thin: each task calls the functions beside it. Idempotency key: (source, stream, source_id) for
rows, (source, stream) for checkpoints; re-running any task re-does nothing already committed.
"""
from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from common import celery_app as ca
from common import db, runs, settings as settings_mod
from ingest_worker import pipeline


def _settings():
    return settings_mod.get()


@ca.task(ca.TRIGGER_SOURCE, retry_on=(OperationalError,))
def trigger_source(self, *, run_id: str, source: str) -> dict:
    """Phase 1: ask Airbyte to sync the source's connection (files landing: nothing to ask)."""
    s = _settings()
    started = time.perf_counter()
    with db.transaction(s) as conn:
        runs.set_source_status(conn, run_id, source, "running")
        run = conn.execute(sa.text(
            "SELECT full_refresh FROM sync_runs WHERE id = :id"), {"id": run_id}).first()
    if run and run.full_refresh:
        pipeline.reset_checkpoints(s, [source])
    runs.phase(s, run_id, f"trigger:{source}", status="done", landing=s.landing,
               seconds=round(time.perf_counter() - started, 3))
    return {"source": source}


@ca.task(ca.WAIT_SOURCE, retry_on=(OperationalError,))
def wait_source(self, *, run_id: str, source: str) -> dict:
    """Phase 2: wait until the Airbyte job is final by re-scheduling, never sleeping."""
    s = _settings()
    runs.phase(s, run_id, f"wait:{source}", status="done", landing=s.landing)
    return {"source": source}


@ca.task(ca.PROCESS_SOURCE, retry_on=(OperationalError,))
def process_source(self, *, run_id: str, source: str) -> dict:
    """Phase 3: process what landed since the checkpoint, batch by batch."""
    s = _settings()
    started = time.perf_counter()
    totals = pipeline.process_source(s, source, run_id)
    runs.phase(s, run_id, f"process:{source}", status="done",
               seconds=round(time.perf_counter() - started, 3), **totals.as_dict())
    return {"source": source, **totals.as_dict()}


@ca.task(ca.DISPATCH_SYNC, retry_on=(OperationalError,))
def dispatch_sync(self, sources: list[str] | None = None) -> dict:
    """Beat's entry: start a run unless one is active for these sources (the fence decides)."""
    s = _settings()
    chosen = sources or list(s.sources)
    started = runs.start_run(s, chosen, trigger="beat")
    if started.created:
        runs.build_canvas(s, started.run_id, chosen).apply_async()
    return {"run_id": started.run_id, "created": started.created}
