"""Celery entry points of the resolve worker (queue ``<domain>.resolve``): phases 4 and 6.

Idempotency key: (source, source_type, source_id) per mapping; resolving twice gives the same
entities. Retries only on database connection errors.
"""
from __future__ import annotations

import time

from sqlalchemy.exc import OperationalError

from common import celery_app as ca
from common import metrics, runs, settings as settings_mod
from resolve_worker import accuracy, analytics, entities


@ca.task(ca.RESOLVE_ENTITIES, retry_on=(OperationalError,))
def resolve_entities(self, *, run_id: str, full: bool = False) -> dict:
    s = settings_mod.get()
    runs.heartbeat(s, run_id)
    stats = entities.resolve_all(s, full=full)  # makes the timelines whose links changed stale
    runs.phase(s, run_id, "resolve", status="done", **stats.__dict__)
    accuracy.export(s)  # this process's gauge shows the latest labelled evaluation
    return stats.__dict__


@ca.task(ca.ANALYTICS, retry_on=(OperationalError,))
def refresh_analytics(self, *args, run_id: str) -> dict:
    s = settings_mod.get()
    started = time.perf_counter()
    sizes = analytics.refresh(s)
    runs.phase(s, run_id, "analytics", status="done", metrics=sizes,
               seconds=round(time.perf_counter() - started, 3))
    return sizes


@ca.task(ca.FINISH_RUN, retry_on=(OperationalError,))
def finish_run(self, *args, run_id: str) -> dict:
    s = settings_mod.get()
    run = runs.finish_run(s, run_id)
    if run.get("started_at") and run.get("finished_at"):
        from datetime import datetime

        took = datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
        metrics.SYNC_DURATION.observe(took.total_seconds())
    metrics.SYNC_RUNS.labels(status=run.get("status") or "unknown").inc()
    return {"run_id": run_id, "status": run.get("status")}


@ca.task(ca.WARM_CACHES, retry_on=(OperationalError,))
def warm_caches(self) -> dict:
    """Beat's entry: recompute the dashboard metrics between runs."""
    return analytics.refresh(settings_mod.get())


@ca.task(ca.PRUNE_RETENTION, retry_on=(OperationalError,))
def prune_retention(self) -> dict:
    """Beat's entry: drop finished runs and re-driven dead letters past the retention."""
    from common import retention

    return retention.prune(settings_mod.get())
