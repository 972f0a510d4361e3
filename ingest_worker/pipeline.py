"""Phase 3, process: read what landed since the checkpoint, batch by batch, and write it.

Each batch is one Postgres transaction holding its rows, its dead letters, the run's counts and
the advanced checkpoint (DESIGN §4): a crash between batches re-reads at most the batch that did
not commit. Streams of a source go in the processor's order (identities before conversations).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from common import db, metrics, runs
from common.models import SyncState
from common.settings import Settings
from ingest_worker import landing
from ingest_worker.sources import PROCESSORS, Context, process
from ingest_worker.store import DbDirectory, record_dead, write_outcome

log = logging.getLogger("payready.ingest")
_SS = SyncState.__table__


@dataclass
class SourceTotals:
    records_in: int = 0
    processed: int = 0
    dead: int = 0
    batches: int = 0
    interactions: int = 0
    chunks_changed: int = 0
    streams: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def landing_dir(settings: Settings) -> Path:
    if settings.landing_dir:
        return settings.landing_dir
    from ingest_worker.generate import SAMPLE_DIR

    return SAMPLE_DIR


def process_source(settings: Settings, source: str, run_id: Optional[str],
                   heartbeat: Callable[[], None] = lambda: None) -> SourceTotals:
    """Process every stream of ``source`` from its checkpoint to the end of what landed."""
    if settings.landing != "files":
        raise NotImplementedError("landing=airbyte reads destination tables: see the ingestion issue")
    module = PROCESSORS[source]
    folder = landing_dir(settings)
    present = landing.available_streams(folder, source)
    ordered = [s for s in module.STREAMS if s in present] + [s for s in present if s not in module.STREAMS]
    totals = SourceTotals()
    for stream in ordered:
        _process_stream(settings, source, stream, landing.stream_path(folder, source, stream), run_id, totals)
        heartbeat()
    return totals


def _process_stream(settings: Settings, source: str, stream: str, path: Path, run_id: Optional[str],
                    totals: SourceTotals) -> None:
    engine = db.engine_for(settings)
    with engine.connect() as conn:
        offset = conn.execute(sa.select(_SS.c.cursor_offset).where(
            _SS.c.source == source, _SS.c.stream == stream)).scalar() or 0
    for batch in landing.read_batches(path, stream, offset, settings.batch_size):
        started = time.perf_counter()
        with engine.begin() as conn:
            directory = DbDirectory(conn)
            records = [r.data for r in batch.records]
            positions = {id(r.data): r.position for r in batch.records}
            outcome = process(source, stream, records,
                              Context(directory=directory, include_bot_messages=settings.include_bot_messages))
            stats = write_outcome(conn, outcome, run_id, source, positions)
            for line, reason, raw in batch.malformed:
                record_dead(conn, run_id, source, stream, reason, {"raw_line": raw}, line)
            records_in = len(batch.records) + len(batch.malformed)
            dead = len(outcome.dead) + len(batch.malformed)
            if outcome.processed + len(outcome.dead) != len(batch.records):
                raise RuntimeError(f"{source}/{stream}: processor accounted for "
                                   f"{outcome.processed + len(outcome.dead)} of {len(batch.records)} records")
            runs.add_counts(conn, run_id, source, records_in, outcome.processed, dead)
            _advance(conn, source, stream, batch.end_offset, records_in)
        elapsed = time.perf_counter() - started
        totals.records_in += records_in
        totals.processed += outcome.processed
        totals.dead += dead
        totals.batches += 1
        totals.interactions += stats.interactions
        totals.chunks_changed += stats.chunks_changed
        totals.streams[stream] = totals.streams.get(stream, 0) + records_in
        metrics.RECORDS.labels(source=source, outcome="processed").inc(outcome.processed)
        metrics.RECORDS.labels(source=source, outcome="dead").inc(dead)
        metrics.DEAD_LETTERS.labels(source=source).inc(dead)
        if elapsed > 0 and records_in:
            metrics.PROCESSING_RATE.labels(source=source).set(records_in / elapsed)
        log.info("batch source=%s stream=%s in=%d processed=%d dead=%d interactions=%d chunks=%d ms=%.0f",
                 source, stream, records_in, outcome.processed, dead, stats.interactions,
                 stats.chunks_changed, elapsed * 1000)


def _advance(conn: sa.engine.Connection, source: str, stream: str, offset: int, count: int) -> None:
    stmt = insert(_SS).values(source=source, stream=stream, cursor_offset=offset, records_total=count)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["source", "stream"],
        set_={"cursor_offset": stmt.excluded.cursor_offset, "updated_at": sa.func.now(),
              "records_total": _SS.c.records_total + stmt.excluded.records_total}))


def reset_checkpoints(settings: Settings, sources: list[str]) -> None:
    """Full refresh: forget where reading stopped; upserts make the re-read harmless."""
    with db.transaction(settings) as conn:
        conn.execute(sa.delete(_SS).where(_SS.c.source.in_(sources)))
