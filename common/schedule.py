"""The beat schedule as data: each entry says what fires, how often, and why.

Beat only fires small dispatcher tasks; the dispatcher starts a run through the fence, so a tick
while a run is active starts nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from common.celery_app import DISPATCH_SYNC


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    every: timedelta
    kwargs: dict
    why: str


ENTRIES = (
    Entry("sync-all-sources", DISPATCH_SYNC, timedelta(minutes=15), {},
          "fresh within minutes: an incremental run of every enabled source"),
)


def beat_schedule() -> dict:
    return {e.name: {"task": e.task, "schedule": e.every.total_seconds(), "kwargs": e.kwargs,
                     "options": {"expires": e.every.total_seconds()}} for e in ENTRIES}
