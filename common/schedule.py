"""The beat schedule as data: each entry says what fires, how often, and why.

Beat only fires small dispatcher tasks. The sync dispatcher starts a run through the fence
(``uq_active_run_per_source``), so a tick while a run of that source is active starts nothing;
recovery, re-drive, warming and pruning are idempotent and short.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from common.settings import Settings
from common.tasknames import DISPATCH_SYNC, PRUNE_RETENTION, RECOVER_STALE_RUNS, REDRIVE_DEAD_LETTERS, WARM_CACHES


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    every: timedelta
    why: str
    kwargs: dict = field(default_factory=dict)


# Default sync interval per source, with the reason; PAYREADY_SYNC_INTERVALS overrides.
SYNC_EVERY: dict[str, tuple[timedelta, str]] = {
    "gong": (timedelta(hours=1), "calls land after Gong transcribes them (tens of minutes); 3 req/s budget"),
    "slack": (timedelta(minutes=5), "threads move fast and the assistant answers from them"),
    "hubspot": (timedelta(minutes=15), "CRM edits are slower; 100 req/10 s budget shared with other apps"),
    "salesforce": (timedelta(minutes=15), "CRM edits are slower; API calls count against the org's daily cap"),
}


def entries(settings: Settings) -> list[Entry]:
    overrides = dict(settings.sync_intervals)
    out = []
    for source in settings.sources:
        every, why = SYNC_EVERY[source]
        if source in overrides:
            every, why = timedelta(seconds=overrides[source]), f"PAYREADY_SYNC_INTERVALS ({why})"
        out.append(Entry(f"sync-{source}", DISPATCH_SYNC, every, why, {"sources": [source]}))
    out += [
        Entry("recover-stale-runs", RECOVER_STALE_RUNS, timedelta(minutes=1),
              "a run whose worker died is failed and resumed from its checkpoints within a minute "
              "of going stale"),
        Entry("redrive-dead-letters", REDRIVE_DEAD_LETTERS, timedelta(hours=6),
              "a deployed processor fix heals dead letters without anyone remembering to run it"),
        Entry("warm-caches", WARM_CACHES, timedelta(minutes=10),
              "dashboard metrics stay fresh between runs (freshness ages even when nothing lands)"),
        Entry("prune-retention", PRUNE_RETENTION, timedelta(days=1),
              "finished runs and re-driven dead letters older than PAYREADY_RETENTION_DAYS go"),
    ]
    return out


def beat_schedule(settings: Settings) -> dict:
    # expires: a tick beat could not deliver in time is dropped, never piled up behind the next
    return {e.name: {"task": e.task, "schedule": e.every.total_seconds(), "kwargs": e.kwargs,
                     "options": {"expires": e.every.total_seconds()}} for e in entries(settings)}
