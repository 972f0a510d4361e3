"""Pruning by retention (beat, daily): what is old and finished goes, nothing active or pending."""
from __future__ import annotations

import sqlalchemy as sa

from common import db
from common.settings import Settings


def prune(settings: Settings) -> dict:
    """Delete finished runs (their sources cascade) and re-driven dead letters older than
    ``PAYREADY_RETENTION_DAYS``; dead letters still waiting are never pruned (nothing lost)."""
    with db.transaction(settings) as conn:
        runs = conn.execute(sa.text(
            "DELETE FROM sync_runs WHERE status NOT IN ('pending','running') "
            "AND COALESCE(finished_at, created_at) < now() - make_interval(days => :d)"),
            {"d": settings.retention_days}).rowcount
        dead = conn.execute(sa.text(
            "DELETE FROM dead_letters WHERE redriven_at IS NOT NULL "
            "AND redriven_at < now() - make_interval(days => :d)"), {"d": settings.retention_days}).rowcount
    return {"runs": runs, "dead_letters_redriven": dead}
