"""Phase 3, process: read what landed since the checkpoint, batch by batch, and write it.

Two landings feed the same processors: ``files`` (JSONL, checkpoint = lines done) and ``airbyte``
(destination tables, checkpoint = ``(_airbyte_extracted_at, _airbyte_raw_id)`` with a look-back).

Each batch is one Postgres transaction holding its rows, its dead letters, the run's counts and
the advanced checkpoint (DESIGN §4): a crash between batches re-reads at most the batch that did
not commit. Streams of a source go in the processor's order (identities before conversations).
"""
from __future__ import annotations

import gc
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from common import db, gcpause, metrics, runs, timeline_cache
from common.models import SyncState
from common.settings import Settings
from ingest_worker import landing, landing_airbyte
from ingest_worker.sources import PROCESSORS, Context, process
from ingest_worker.store import IdentityCache, record_dead, stage, write_outcome

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
    max_batches: Optional[int] = None
    finished: bool = False

    @property
    def out_of_budget(self) -> bool:
        return self.max_batches is not None and self.batches >= self.max_batches

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "max_batches"}


def landing_dir(settings: Settings) -> Path:
    if settings.landing_dir:
        return settings.landing_dir
    from ingest_worker.generate import SAMPLE_DIR

    return SAMPLE_DIR


class CheckpointMoved(Exception):
    """Another process advanced this stream's checkpoint first: it owns the stream now."""


@contextmanager
def _gc_between_batches():
    """Cyclic garbage collection every few batches (``_collect_batch_garbage``) instead of automatic.

    A batch keeps thousands of parsed records and rows alive at once, so the automatic collector
    ran about 45 times per batch, promoting them to older generations and walking every live
    object in ~40 full collections per 100k records: about a quarter of the ingest's Python CPU.
    Nearly all of a batch's objects are freed by reference counting when it ends; the few cycles
    batches make are young, and collected every ``_BATCHES_PER_COLLECTION`` batches (each
    collection still walks the batch in hand: 8 ms for 1,000 records).
    """
    with gcpause.paused():
        yield


_BATCHES_PER_COLLECTION = 8
_batches_since_collection = 0


def _collect_batch_garbage() -> None:
    global _batches_since_collection
    if gc.isenabled():  # not inside _gc_between_batches: the automatic collector runs
        return
    _batches_since_collection += 1
    if _batches_since_collection >= _BATCHES_PER_COLLECTION:
        _batches_since_collection = 0
        gc.collect(1)


def process_source(settings: Settings, source: str, run_id: Optional[str],
                   heartbeat: Callable[[], None] = lambda: None,
                   max_batches: Optional[int] = None) -> SourceTotals:
    """Process the streams of ``source`` from their checkpoints to the end of what landed.

    With ``max_batches``, stop after that many batches and leave ``finished`` False: the task
    re-enqueues itself, so every task stays short and fits the broker's visibility timeout.
    """
    with _gc_between_batches():
        return _process_source(settings, source, run_id, heartbeat, max_batches)


def _process_source(settings: Settings, source: str, run_id: Optional[str], heartbeat: Callable[[], None],
                    max_batches: Optional[int]) -> SourceTotals:
    module = PROCESSORS[source]
    totals = SourceTotals(max_batches=max_batches)
    with stage("lookup"), db.engine_for(settings).connect() as conn:
        identities = IdentityCache.load(conn, source)
    if settings.landing == "airbyte":
        for stream in module.STREAMS:
            _process_airbyte_stream(settings, source, stream, run_id, totals, identities)
            heartbeat()
            if totals.out_of_budget:
                return totals
        totals.finished = True
        return totals
    folder = landing_dir(settings)
    present = landing.available_streams(folder, source)
    ordered = [s for s in module.STREAMS if s in present] + [s for s in present if s not in module.STREAMS]
    for stream in ordered:
        _process_file_stream(settings, source, stream, landing.stream_path(folder, source, stream), run_id, totals,
                             identities)
        heartbeat()
        if totals.out_of_budget:
            return totals
    totals.finished = True
    return totals


def _process_file_stream(settings: Settings, source: str, stream: str, path: Path, run_id: Optional[str],
                         totals: SourceTotals, identities: IdentityCache) -> None:
    engine = db.engine_for(settings)
    with engine.connect() as conn:
        offset = conn.execute(sa.select(_SS.c.cursor_offset).where(
            _SS.c.source == source, _SS.c.stream == stream)).scalar() or 0
    for batch in landing.read_batches(path, stream, offset, settings.batch_size):
        if totals.out_of_budget:
            return
        def advance(conn: sa.engine.Connection, records_in: int, start: int = offset,
                    end: int = batch.end_offset) -> None:
            _advance(conn, source, stream, end, records_in, expected=start)
        try:
            _write_batch(settings, source, stream, batch.records, batch.malformed, run_id, totals, advance,
                         identities)
        except CheckpointMoved:
            log.warning("checkpoint of %s/%s moved past %d under us: another process owns the stream",
                        source, stream, offset)
            return
        offset = batch.end_offset


def _process_airbyte_stream(settings: Settings, source: str, stream: str, run_id: Optional[str],
                            totals: SourceTotals, identities: IdentityCache) -> None:
    """Read an Airbyte destination table from its (extracted_at, raw_id) cursor."""
    engine = db.engine_for(settings)
    reader = db.engine_for(settings) if not settings.airbyte_database_url else \
        db.make_engine(settings.airbyte_database_url, "public", pool_size=1)
    with engine.connect() as conn:
        cursor = landing_airbyte.load_cursor(conn, source, stream)
        seen = _seen_in_window(conn, source, stream, cursor, settings.lookback_seconds)
    schema = settings.airbyte_schema.format(source=source)
    try:
        with reader.connect() as read_conn:
            for batch in landing_airbyte.read_batches(
                    read_conn, schema, stream, cursor, settings.batch_size,
                    settings.lookback_seconds, layout=settings.airbyte_layout, seen_ids=seen, namespace=schema):
                def advance(conn: sa.engine.Connection, records_in: int, after=batch.cursor_after,
                            ids=[r.position for r in batch.records] + [m[0] for m in batch.malformed]) -> None:
                    landing_airbyte.save_cursor(conn, source, stream, after, records_in)
                    _remember_seen(conn, source, stream, ids, after, settings.lookback_seconds)
                if totals.out_of_budget:
                    return
                if batch.generation_rose:
                    log.warning("airbyte generation rose for %s/%s: re-reading the table from the start",
                                source, stream)
                _write_batch(settings, source, stream, batch.records, batch.malformed, run_id, totals, advance,
                             identities)
    finally:
        if reader is not engine:
            reader.dispose()


def _seen_in_window(conn: sa.engine.Connection, source: str, stream: str,
                    cursor: landing_airbyte.AirbyteCursor, lookback: int) -> set:
    if cursor.extracted_at is None:
        return set()
    return set(conn.execute(sa.text(
        "SELECT raw_id FROM landing_seen WHERE source = :s AND stream = :t "
        "AND extracted_at >= CAST(:at AS timestamptz) - make_interval(secs => :lb)"),
        {"s": source, "t": stream, "at": cursor.extracted_at, "lb": lookback}).scalars())


def _remember_seen(conn: sa.engine.Connection, source: str, stream: str, ids: list,
                   after: landing_airbyte.AirbyteCursor, lookback: int) -> None:
    """Record the batch's raw ids and forget those that fell out of the look-back window."""
    if ids and after.extracted_at is not None:
        conn.execute(sa.text(
            "INSERT INTO landing_seen (source, stream, raw_id, extracted_at) VALUES (:s, :t, :id, :at) "
            "ON CONFLICT DO NOTHING"),
            [{"s": source, "t": stream, "id": str(i), "at": after.extracted_at} for i in ids])
    if after.extracted_at is not None:
        conn.execute(sa.text(
            "DELETE FROM landing_seen WHERE source = :s AND stream = :t "
            "AND extracted_at < CAST(:at AS timestamptz) - make_interval(secs => :lb)"),
            {"s": source, "t": stream, "at": after.extracted_at, "lb": lookback})


def _write_batch(settings: Settings, source: str, stream: str, landed: list, malformed: list,
                 run_id: Optional[str], totals: SourceTotals,
                 advance: Callable[[sa.engine.Connection, int], None], identities: IdentityCache) -> None:
    """One transaction: rows, dead letters, run counts and the checkpoint (DESIGN §4)."""
    from ingest_worker import store

    started = time.perf_counter()
    with db.engine_for(settings).begin() as conn:
        runs.hold_fence(conn, run_id, source)  # a run failed as stale writes nothing more
        records = [r.data for r in landed]
        positions = {id(r.data): r.position for r in landed}
        directory = identities.directory(conn)
        with store.stage("lookup"):
            directory.preload(source, records)
        with store.stage("process"):
            outcome = process(source, stream, records,
                              Context(directory=directory, include_bot_messages=settings.include_bot_messages))
        stats = write_outcome(conn, outcome, run_id, source, positions)
        for position, reason, raw in malformed:
            record_dead(conn, run_id, source, stream, reason, {"raw_line": raw}, position)
        records_in = len(landed) + len(malformed)
        dead = len(outcome.dead) + len(malformed)
        if outcome.processed + len(outcome.dead) != len(landed):
            raise RuntimeError(f"{source}/{stream}: processor accounted for "
                               f"{outcome.processed + len(outcome.dead)} of {len(landed)} records")
        runs.add_counts(conn, run_id, source, records_in, outcome.processed, dead)
        advance(conn, records_in)
        committing = time.perf_counter()
    store.STAGE_SECONDS["commit"] += time.perf_counter() - committing
    timeline_cache.stale_after_commit(settings, stats.stale_entities, f"{source}/{stream}")
    identities.add_written(outcome.identities)
    _collect_batch_garbage()
    elapsed = time.perf_counter() - started
    totals.records_in += records_in
    totals.processed += outcome.processed
    totals.dead += dead
    totals.batches += 1
    totals.interactions += stats.interactions
    totals.chunks_changed += stats.chunks_changed
    per_stream = totals.streams.setdefault(stream, {"in": 0, "processed": 0, "dead_lettered": 0})
    per_stream["in"] += records_in
    per_stream["processed"] += outcome.processed
    per_stream["dead_lettered"] += dead
    metrics.RECORDS.labels(source=source, outcome="processed").inc(outcome.processed)
    metrics.RECORDS.labels(source=source, outcome="dead").inc(dead)
    metrics.DEAD_LETTERS.labels(source=source).inc(dead)
    if elapsed > 0 and records_in:
        metrics.PROCESSING_RATE.labels(source=source).set(records_in / elapsed)
    log.info("batch source=%s stream=%s in=%d processed=%d dead=%d interactions=%d chunks=%d ms=%.0f",
             source, stream, records_in, outcome.processed, dead, stats.interactions,
             stats.chunks_changed, elapsed * 1000)


def _advance(conn: sa.engine.Connection, source: str, stream: str, offset: int, count: int,
             expected: Optional[int] = None) -> None:
    """Move the checkpoint to ``offset``; with ``expected``, only from there (compare-and-set)."""
    stmt = insert(_SS).values(source=source, stream=stream, cursor_offset=offset, records_total=count)
    moved = conn.execute(stmt.on_conflict_do_update(
        index_elements=["source", "stream"],
        set_={"cursor_offset": stmt.excluded.cursor_offset, "updated_at": sa.func.now(),
              "records_total": _SS.c.records_total + stmt.excluded.records_total},
        where=None if expected is None else sa.func.coalesce(_SS.c.cursor_offset, 0) == expected))
    if moved.rowcount == 0:
        raise CheckpointMoved(f"{source}/{stream}")


def reset_checkpoints(settings: Settings, sources: list[str]) -> None:
    """Full refresh: forget where reading stopped; upserts make the re-read harmless."""
    with db.transaction(settings) as conn:
        conn.execute(sa.delete(_SS).where(_SS.c.source.in_(sources)))
        conn.execute(sa.text("DELETE FROM landing_seen WHERE source = ANY(:s)"), {"s": list(sources)})
