"""Celery entry points of the ingest worker (queue ``<domain>.ingest``): phases 1–3.

Thin: each task calls the functions beside it. Idempotency key: (source, stream, source_id) for
rows, (source, stream) for checkpoints; re-running any task re-does nothing already committed.
"""
from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from common import celery_app as ca
from common import audit, db, runs, settings as settings_mod
from ingest_worker import airbyte_jobs as airbyte, pipeline


def _settings():
    return settings_mod.get()


@ca.task(ca.TRIGGER_SOURCE, retry_on=(OperationalError, airbyte.RETRYABLE))
def trigger_source(self, *, run_id: str, source: str) -> dict:
    """Phase 1: ask Airbyte to sync the source's connection (files landing: nothing to ask)."""
    s = _settings()
    started = time.perf_counter()
    with db.transaction(s) as conn:
        runs.set_source_status(conn, run_id, source, "running")
        run = conn.execute(sa.text("SELECT full_refresh FROM sync_runs WHERE id = :id"), {"id": run_id}).first()
        job_id = conn.execute(sa.text("SELECT airbyte_job_id FROM sync_run_sources WHERE run_id = :id AND "
                                      "source = :s"), {"id": run_id, "s": source}).scalar()
    if run and run.full_refresh:
        pipeline.reset_checkpoints(s, [source])
    detail: dict = {"landing": s.landing}
    if s.landing == "airbyte" and job_id is None:  # a redelivered trigger keeps the job it started
        job = airbyte.client(s).trigger_sync(dict(s.airbyte_connections)[source])
        with db.transaction(s) as conn:
            runs.set_source_status(conn, run_id, source, "running", job_id=int(job.job_id))
        detail.update(job_id=job.job_id, attached=job.attached, job_status=job.status)
    runs.phase(s, run_id, f"trigger:{source}", status="done", seconds=round(time.perf_counter() - started, 3),
               **detail)
    return {"source": source}


@ca.task(ca.WAIT_SOURCE, retry_on=(OperationalError, airbyte.RETRYABLE), max_retries=None)
def wait_source(self, *, run_id: str, source: str) -> dict:
    """Phase 2: wait until the Airbyte job is final by re-scheduling, never sleeping."""
    s = _settings()
    if s.landing != "airbyte":
        runs.phase(s, run_id, f"wait:{source}", status="done", landing=s.landing)
        return {"source": source}
    with db.transaction(s) as conn:
        job_id = conn.execute(sa.text("SELECT airbyte_job_id FROM sync_run_sources WHERE run_id = :id AND "
                                      "source = :s"), {"id": run_id, "s": source}).scalar()
    job = airbyte.client(s).get_job(job_id)
    polls = self.request.retries + 1
    if not job.is_final:
        runs.phase(s, run_id, f"wait:{source}", status="waiting", job_id=job_id, job_status=job.status, polls=polls)
        raise self.retry(countdown=s.airbyte_poll_seconds, max_retries=None)
    runs.phase(s, run_id, f"wait:{source}", status="done", job_id=job_id, job_status=job.status, polls=polls,
               rows_synced=job.rows_synced)
    if job.status != "succeeded":
        # A failed or cancelled Airbyte job may still have committed rows: process them anyway and
        # record the job's outcome on the source; the run then reports failed for this source.
        with db.transaction(s) as conn:
            runs.set_source_status(conn, run_id, source, "running", error=f"airbyte job {job_id} {job.status}")
    return {"source": source, "job_status": job.status}


@ca.task(ca.PROCESS_SOURCE, retry_on=(OperationalError,))
def process_source(self, *, run_id: str, source: str, part: int = 1, seconds_before: float = 0.0) -> dict:
    """Phase 3: process what landed since the checkpoint, a bounded number of batches per task.

    When batches remain, the task replaces itself with the next part (same place in the canvas),
    so no task outlives the broker's visibility timeout and a killed part costs one batch.
    """
    s = _settings()
    started = time.perf_counter()
    totals = pipeline.process_source(s, source, run_id, max_batches=s.process_batches_per_task)
    if not totals.finished:
        runs.phase(s, run_id, f"process:{source}", status="running", parts=part)
        raise self.replace(ca.app.signature(ca.PROCESS_SOURCE, kwargs={
            "run_id": run_id, "source": source, "part": part + 1,
            "seconds_before": round(seconds_before + time.perf_counter() - started, 3)}, immutable=True))
    with db.transaction(s) as conn:  # an Airbyte job that failed still fails its source, after its rows
        conn.execute(sa.text("UPDATE sync_run_sources SET status = 'failed' WHERE run_id = :id AND source = :s "
                             "AND error IS NOT NULL AND status = 'running'"), {"id": run_id, "s": source})
        counts = conn.execute(sa.text("SELECT records_in, processed, dead_lettered FROM sync_run_sources "
                                      "WHERE run_id = :id AND source = :s"), {"id": run_id, "s": source}).first()
    summary = {"in": counts.records_in, "processed": counts.processed, "dead_lettered": counts.dead_lettered,
               "parts": part} if counts else {}
    runs.phase(s, run_id, f"process:{source}", status="done",
               seconds=round(seconds_before + time.perf_counter() - started, 3), **summary,
               last_part=totals.as_dict())
    return {"source": source, **summary}


@ca.task(ca.DISPATCH_SYNC, retry_on=(OperationalError,))
def dispatch_sync(self, sources: list[str] | None = None) -> dict:
    """Beat's entry: start a run unless one is active for these sources (the fence decides)."""
    s = _settings()
    chosen = sources or list(s.sources)
    started = runs.start_run(s, chosen, trigger="beat")
    if started.created:
        runs.dispatch(s, started.run_id, chosen)
    audit.write(s, "beat", "sync.trigger", f"run_id={started.run_id}",
                "created" if started.created else "joined", {"sources": chosen})
    return {"run_id": started.run_id, "created": started.created}


@ca.task(ca.RECOVER_STALE_RUNS, retry_on=(OperationalError,))
def recover_stale_runs(self, stale_after: float | None = None) -> list[dict]:
    """Beat's entry: fail runs whose heartbeat stopped and resume them from their checkpoints."""
    from common import recovery

    return [r.as_dict() for r in recovery.recover_stale_runs(_settings(), stale_after)]


@ca.task(ca.REDRIVE_DEAD_LETTERS, retry_on=(OperationalError,))
def redrive_dead_letters(self) -> dict:
    """Beat's entry: run dead letters through today's processors (a deployed fix heals them)."""
    from ingest_worker.redrive import redrive

    return redrive(_settings(), None).__dict__
