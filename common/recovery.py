"""Stale-run recovery: a run whose workers died is failed and resumed by a fresh run.

Every phase beats the run's heart (each processing batch, each embed batch, each phase mark). A
run still active whose heartbeat is older than ``PAYREADY_RUN_STALE_SECONDS`` is presumed dead:
beat fires :func:`recover_stale_runs` every minute, which

1. fails the stale run (conditionally: only if it is still active *and* still stale, so two
   recoverers never both act), waiting on the row lock a batch in flight holds (``runs.hold_fence``),
   so no batch of the dead run commits afterwards;
2. starts a fresh run of the same sources (``trigger='recovery'``) through the fence and its
   canvas. Processing resumes from the per-stream checkpoints in ``sync_state`` (each committed
   with its batch), resolution is idempotent, embedding takes the chunks still pending.

Messages of the dead run that the broker redelivers later (the Redis visibility timeout, RabbitMQ
on connection loss) reach tasks that find their run inactive and stop without writing
(:class:`runs.RunSuperseded`). Together: exactly-once effect, whatever was killed when.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import sqlalchemy as sa

from common import db, runs
from common.settings import Settings

log = logging.getLogger("payready.recovery")


@dataclass
class Recovered:
    stale_run: str
    sources: list[str]
    new_run: Optional[str]
    created: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def stale_runs(settings: Settings, stale_after: Optional[float] = None) -> list[str]:
    """Active runs whose heartbeat (or start, or creation) is older than ``stale_after`` seconds."""
    seconds = settings.run_stale_seconds if stale_after is None else stale_after
    with db.transaction(settings) as conn:
        rows = conn.execute(sa.text(
            "SELECT id FROM sync_runs WHERE status IN ('pending','running') "
            "AND COALESCE(heartbeat_at, started_at, created_at) < now() - make_interval(secs => :s) "
            "ORDER BY created_at"), {"s": seconds}).scalars().all()
    return [str(r) for r in rows]


def _fail_if_still_stale(settings: Settings, run_id: str, seconds: float) -> Optional[tuple[list[str], bool]]:
    """Fail the run if it is still active and stale; its active sources and full-refresh need."""
    with db.transaction(settings) as conn:
        # sources first, in the same order batches lock them (hold_fence), then the run
        sources = conn.execute(sa.text(
            "SELECT source FROM sync_run_sources WHERE run_id = :id AND status IN ('pending','running') "
            "ORDER BY source FOR UPDATE"), {"id": run_id}).scalars().all()
        run = conn.execute(sa.text(
            "UPDATE sync_runs SET status = 'failed', finished_at = now(), "
            "error = COALESCE(error, 'stale: no heartbeat for ' || :s || ' s; resumed by a recovery run') "
            "WHERE id = :id AND status IN ('pending','running') "
            "AND COALESCE(heartbeat_at, started_at, created_at) < now() - make_interval(secs => :s) "
            "RETURNING full_refresh, phases"), {"id": run_id, "s": seconds}).first()
        if run is None:
            return None  # it beat meanwhile, or another recoverer took it
        conn.execute(sa.text(
            "UPDATE sync_run_sources SET status = 'failed', error = COALESCE(error, 'stale run') "
            "WHERE run_id = :id AND status IN ('pending','running')"), {"id": run_id})
    # a full refresh whose triggers already reset the checkpoints must not reset them again
    reset_done = any(key.startswith("trigger:") for key in (run.phases or {}))
    return list(sources), bool(run.full_refresh and not reset_done)


def recover_stale_runs(settings: Settings, stale_after: Optional[float] = None) -> list[Recovered]:
    """Fail every stale run and start its successor; returns what was done."""
    seconds = settings.run_stale_seconds if stale_after is None else stale_after
    done = []
    for run_id in stale_runs(settings, seconds):
        failed = _fail_if_still_stale(settings, run_id, seconds)
        if failed is None:
            continue
        sources, full_refresh = failed
        if not sources:
            done.append(Recovered(run_id, [], None, False))
            continue
        started = runs.start_run(settings, sources, trigger="recovery", full_refresh=full_refresh)
        if started.created:
            runs.phase(settings, started.run_id, "recovery", recovered_from=run_id)
            runs.dispatch(settings, started.run_id, sources)
        log.warning("run %s stale for %ss: failed; sources %s resumed by run %s", run_id, seconds,
                    ",".join(sources), started.run_id)
        done.append(Recovered(run_id, sources, started.run_id, started.created))
    return done
