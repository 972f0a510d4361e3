"""Sync runs: the fence (one active run per source), phases, counts, heartbeat and the canvas.

The fence is the partial unique index ``uq_active_run_per_source`` in Postgres, not a Redis lock:
two triggers racing for the same source cannot both insert an active row.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from common import db
from common.settings import Settings

log = logging.getLogger("payready.runs")

# Parallel embed tasks per run; each claims batches with SKIP LOCKED, so more slots only help
# when more embed processes run.
EMBED_SLOTS = 2


class RunSuperseded(Exception):
    """The run this work belongs to is no longer active (failed as stale, cancelled, finished):
    its remaining tasks stop without writing, so a recovered run never races its predecessor."""


@dataclass
class StartedRun:
    run_id: str
    created: bool  # False: an active run already covered these sources and is returned instead


def start_run(settings: Settings, sources: list[str], trigger: str = "api",
              full_refresh: bool = False) -> StartedRun:
    """Create a pending run for ``sources``, or return the active run that holds one of them."""
    engine = db.engine_for(settings)
    run_id = uuid.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO sync_runs (id, status, trigger, full_refresh, phases) "
                "VALUES (:id, 'pending', :trigger, :fr, '{}'::jsonb)"),
                {"id": run_id, "trigger": trigger, "fr": full_refresh})
            for source in sources:
                conn.execute(sa.text(
                    "INSERT INTO sync_run_sources (run_id, source, status) VALUES (:id, :s, 'pending')"),
                    {"id": run_id, "s": source})
        return StartedRun(str(run_id), True)
    except IntegrityError:
        active = active_run_for(settings, sources)
        if active is None:  # the other run ended between our insert and this read: try once more
            return start_run(settings, sources, trigger, full_refresh)
        return StartedRun(active, False)


def active_run_for(settings: Settings, sources: list[str]) -> Optional[str]:
    with db.transaction(settings) as conn:
        row = conn.execute(sa.text(
            "SELECT run_id FROM sync_run_sources WHERE source = ANY(:s) "
            "AND status IN ('pending','running') LIMIT 1"), {"s": list(sources)}).first()
    return str(row[0]) if row else None


def is_active(settings: Settings, run_id: str) -> bool:
    with db.transaction(settings) as conn:
        status = conn.execute(sa.text("SELECT status FROM sync_runs WHERE id = :id"), {"id": run_id}).scalar()
    return status in ("pending", "running")


def hold_fence(conn: sa.engine.Connection, run_id: Optional[str], source: str) -> None:
    """Lock the run's row for ``source`` until this transaction ends, or raise RunSuperseded.

    A batch holds the lock while it writes; recovery's ``fail_run`` waits for it, so no batch of a
    run commits after the run was declared dead (the row lock is the fencing token).
    """
    if not run_id:
        return
    status = conn.execute(sa.text(
        "SELECT status FROM sync_run_sources WHERE run_id = :id AND source = :s FOR UPDATE"),
        {"id": run_id, "s": source}).scalar()
    if status not in ("pending", "running"):
        raise RunSuperseded(f"run {run_id} source {source} is {status or 'gone'}")


def heartbeat(settings: Settings, run_id: Optional[str]) -> None:
    """Tell recovery this run is alive (long phases call it between batches)."""
    if not run_id:
        return
    with db.transaction(settings) as conn:
        conn.execute(sa.text("UPDATE sync_runs SET heartbeat_at = now() WHERE id = :id"), {"id": run_id})


def mark_phase(conn: sa.engine.Connection, run_id: str, phase: str, **fields: Any) -> None:
    """Merge ``fields`` into the phase entry of the run and beat its heart."""
    conn.execute(sa.text(
        "UPDATE sync_runs SET phases = jsonb_set(phases, ARRAY[:phase], "
        "COALESCE(phases -> :phase, '{}'::jsonb) || CAST(:fields AS jsonb)), "
        "heartbeat_at = now(), status = CASE WHEN status = 'pending' THEN 'running' ELSE status END, "
        "started_at = COALESCE(started_at, now()) WHERE id = :id"),
        {"id": run_id, "phase": phase, "fields": json.dumps(fields, default=str)})


def phase(settings: Settings, run_id: str, name: str, **fields: Any) -> None:
    with db.transaction(settings) as conn:
        mark_phase(conn, run_id, name, **fields)


def set_source_status(conn: sa.engine.Connection, run_id: str, source: str, status: str,
                      error: Optional[str] = None, job_id: Optional[int] = None) -> None:
    conn.execute(sa.text(
        "UPDATE sync_run_sources SET status = :st, error = COALESCE(:err, error), "
        "airbyte_job_id = COALESCE(:job, airbyte_job_id) WHERE run_id = :id AND source = :s"),
        {"st": status, "err": error, "job": job_id, "id": run_id, "s": source})
    if status == "running":
        conn.execute(sa.text(
            "UPDATE sync_runs SET status = 'running', started_at = COALESCE(started_at, now()), "
            "heartbeat_at = now() WHERE id = :id AND status = 'pending'"), {"id": run_id})


def add_counts(conn: sa.engine.Connection, run_id: Optional[str], source: str,
               records_in: int, processed: int, dead: int) -> None:
    if not run_id:
        return
    conn.execute(sa.text(
        "UPDATE sync_run_sources SET records_in = records_in + :i, processed = processed + :p, "
        "dead_lettered = dead_lettered + :d WHERE run_id = :id AND source = :s"),
        {"i": records_in, "p": processed, "d": dead, "id": run_id, "s": source})
    conn.execute(sa.text("UPDATE sync_runs SET heartbeat_at = now() WHERE id = :id"), {"id": run_id})


def finish_run(settings: Settings, run_id: str) -> dict:
    """Close a run: sources still active succeed (failed ones stay failed); the fence opens."""
    with db.transaction(settings) as conn:
        conn.execute(sa.text(
            "UPDATE sync_run_sources SET status = 'succeeded' "
            "WHERE run_id = :id AND status IN ('pending','running')"), {"id": run_id})
        failed = conn.execute(sa.text(
            "SELECT count(*) FROM sync_run_sources WHERE run_id = :id AND status = 'failed'"),
            {"id": run_id}).scalar()
        status = "failed" if failed else "succeeded"
        conn.execute(sa.text(
            "UPDATE sync_runs SET status = :st, finished_at = now(), heartbeat_at = now() "
            "WHERE id = :id AND status IN ('pending','running')"), {"st": status, "id": run_id})
        conn.execute(sa.text(
            "INSERT INTO data_sources (source, last_success_at) "
            "SELECT source, now() FROM sync_run_sources WHERE run_id = :id AND status = 'succeeded' "
            "ON CONFLICT (source) DO UPDATE SET last_success_at = EXCLUDED.last_success_at"),
            {"id": run_id})
    return get_run(settings, run_id) or {}


def fail_run(settings: Settings, run_id: str, error: str) -> None:
    """Fail a run and open its fence; a later trigger starts fresh from the checkpoints."""
    with db.transaction(settings) as conn:
        conn.execute(sa.text(
            "UPDATE sync_run_sources SET status = 'failed', error = COALESCE(error, :e) "
            "WHERE run_id = :id AND status IN ('pending','running')"), {"id": run_id, "e": error[:2000]})
        conn.execute(sa.text(
            "UPDATE sync_runs SET status = 'failed', error = COALESCE(error, :e), finished_at = now() "
            "WHERE id = :id AND status IN ('pending','running')"), {"id": run_id, "e": error[:2000]})


def get_run(settings: Settings, run_id: str) -> Optional[dict]:
    try:
        uuid.UUID(str(run_id))
    except ValueError:
        return None
    with db.transaction(settings) as conn:
        run = conn.execute(sa.text("SELECT * FROM sync_runs WHERE id = :id"), {"id": run_id}).mappings().first()
        if run is None:
            return None
        sources = conn.execute(sa.text(
            "SELECT source, status, records_in, processed, dead_lettered, error, airbyte_job_id "
            "FROM sync_run_sources WHERE run_id = :id ORDER BY source"), {"id": run_id}).mappings().all()
    return {
        "run_id": str(run["id"]),
        "status": run["status"],
        "trigger": run["trigger"],
        "full_refresh": run["full_refresh"],
        "created_at": _iso(run["created_at"]),
        "started_at": _iso(run["started_at"]),
        "finished_at": _iso(run["finished_at"]),
        "heartbeat_at": _iso(run["heartbeat_at"]),
        "error": run["error"],
        "phases": run["phases"],
        "sources": {s["source"]: {"status": s["status"], "in": s["records_in"], "processed": s["processed"],
                                  "dead_lettered": s["dead_lettered"], "error": s["error"],
                                  "airbyte_job_id": s["airbyte_job_id"]} for s in sources},
    }


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return value.isoformat() if value else None


def wait_for(settings: Settings, run_id: str, timeout: float = 600.0, poll: float = 0.5,
             progress=None) -> dict:  # noqa: ANN001
    """Block (in the CLI, never in a worker) until the run is final or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        run = get_run(settings, run_id) or {}
        if progress:
            progress(run)
        if run.get("status") in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return run
        time.sleep(poll)


def dispatch(settings: Settings, run_id: str, sources: list[str]) -> None:
    """Send the run's canvas, keeping none of its Celery results.

    A run's progress is read from the database, never from Celery results; but sending a chord
    registers its header's results with the result backend (a Redis pub/sub subscription each,
    the chord's barrier waiting on them), for as long as the process lives. They are released here,
    while the backend is reachable: left to interpreter shutdown (a CLI command), each result's
    unsubscribe fails with "Exception ignored in AsyncResult.__del__ ... sys.meta_path is None".
    """
    from common.celery_app import app

    backend = app.backend
    before = {id(r) for r in _pending_results(backend)}
    build_canvas(settings, run_id, sources).apply_async()
    try:
        for result in _pending_results(backend):
            if id(result) not in before:  # another thread's results are its own business
                backend.remove_pending_result(result)
    except Exception:  # noqa: BLE001 - the canvas is sent; a Celery whose internals differ costs only the noise
        log.debug("could not release the results of run %s", run_id, exc_info=True)


def _pending_results(backend: Any) -> list:
    # Celery keeps them per task id in two mappings (strong, weak) of asynchronous backends only
    # (Redis, RPC); it has no public way to list them. Celery 5.5+ keeps a dict of waiters per id,
    # earlier 5.x the result itself
    out = []
    for mapping in getattr(backend, "_pending_results", ()):
        for waiting in list(mapping.values()):
            out.extend(list(waiting.values()) if isinstance(waiting, Mapping) else [waiting])
    return out


def build_canvas(settings: Settings, run_id: str, sources: list[str]):
    """The six phases of DESIGN §3 as one canvas.

    Per source, trigger → wait → process is a chain; the sources run as a group; the chord body
    resolves, then embeds with a group of parallel embed tasks, then refreshes analytics and
    closes the run.
    """
    from celery import chain, chord, group

    from common.celery_app import (ANALYTICS, EMBED_PENDING, FINISH_RUN, PROCESS_SOURCE,
                                   RESOLVE_ENTITIES, TRIGGER_SOURCE, WAIT_SOURCE, app)

    def sig(name: str, **kwargs: Any):
        return app.signature(name, kwargs=kwargs, immutable=True)

    per_source = [chain(sig(TRIGGER_SOURCE, run_id=run_id, source=s),
                        sig(WAIT_SOURCE, run_id=run_id, source=s),
                        sig(PROCESS_SOURCE, run_id=run_id, source=s)) for s in sources]
    embed_fanout = group(sig(EMBED_PENDING, run_id=run_id, slot=i) for i in range(EMBED_SLOTS))
    after = chain(sig(RESOLVE_ENTITIES, run_id=run_id),
                  chord(embed_fanout, chain(sig(ANALYTICS, run_id=run_id), sig(FINISH_RUN, run_id=run_id))))
    return chord(group(per_source), after)

