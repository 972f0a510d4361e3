"""The writer: upserts what processors produced, re-chunks what changed, records dead letters.

Everything is keyed on ``(source, source_type, source_id)`` (DESIGN §4), so Airbyte's
at-least-once delivery has an exactly-once effect. Duplicates inside one batch are merged first
(Postgres refuses to upsert the same key twice in one statement). Partial interactions from
different streams merge: a field left None never overwrites a stored value.

The statements are set-based (``upserts``: one per table per batch); only interactions the batch
inserted or changed are re-chunked (``rechunk``).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from common import pii
from common.models import DeadLetter, SourceIdentity
from ingest_worker import model, rechunk, upserts

_SI = SourceIdentity.__table__
_DL = DeadLetter.__table__

#: Seconds spent per stage of the process phase in this process (bench/ingest.py reads it).
STAGE_SECONDS: dict[str, float] = defaultdict(float)
#: CPU seconds of this process per stage (a busy machine inflates wall time, far less this).
STAGE_CPU_SECONDS: dict[str, float] = defaultdict(float)


@contextmanager
def stage(name: str):
    started, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        STAGE_SECONDS[name] += time.perf_counter() - started
        STAGE_CPU_SECONDS[name] += time.process_time() - cpu


class DbDirectory:
    """Identity lookups for processors (names for Slack mentions, Gong speakers).

    ``cache`` may be shared by the batches of one task run (see :class:`IdentityCache`): when it
    holds every stored identity of a source, a key of that source it lacks is known absent.
    """

    def __init__(self, conn: sa.engine.Connection, cache: Optional["IdentityCache"] = None):
        self.conn = conn
        self._shared = cache
        self._cache: dict[model.IdentityKey, Optional[model.Identity]] = cache.known if cache else {}
        self._absent: set[tuple[str, str]] = set()  # (source, source_id) known to match no identity

    def add(self, identity: model.Identity) -> None:
        self._cache[identity.key] = identity

    def preload(self, source: str, records: Iterable[Any]) -> None:
        """One query for every identity of ``source`` whose id appears in ``records``.

        Ids found are cached; ids not found are known absent, so ``get`` skips the per-key query.
        Keys no record spells out (ids inside free text, other sources) still fall back to it.
        Nothing to do when the shared cache already holds all of the source's identities.
        """
        if self._shared is not None and source in self._shared.complete:
            return
        candidates: set[str] = set()
        for record in records:
            _id_candidates(record, candidates, 0)
        if not candidates:
            return
        ids = sorted(candidates)
        rows = self.conn.execute(sa.select(_SI).where(
            _SI.c.source == source, _SI.c.source_id.in_(ids))).mappings().all()
        for row in rows:
            key = model.IdentityKey(source, row["source_type"], row["source_id"])
            self._cache.setdefault(key, _identity_from_row(key, row))
        found = {row["source_id"] for row in rows}
        self._absent.update((source, i) for i in ids if i not in found)

    def get(self, key: model.IdentityKey) -> Optional[model.Identity]:
        if key not in self._cache:
            if (key.source, key.source_id) in self._absent:
                return None
            if self._shared is not None and key.source in self._shared.complete:
                return None
            row = self.conn.execute(sa.select(_SI).where(
                _SI.c.source == key.source, _SI.c.source_type == key.source_type,
                _SI.c.source_id == key.source_id)).mappings().first()
            self._cache[key] = None if row is None else _identity_from_row(key, row)
        return self._cache[key]


class IdentityCache:
    """The identities one task run has seen, shared by its batches (one query per run, not per batch).

    ``load`` reads every stored identity of the source when there are at most ``limit``; the run
    then adds what each committed batch wrote, so the cache stays complete for that source (one
    process task per source at a time: runs are fenced). Above the limit the batches fall back to
    the per-batch preload.
    """

    LIMIT = 200_000

    def __init__(self) -> None:
        self.known: dict[model.IdentityKey, Optional[model.Identity]] = {}
        self.complete: set[str] = set()

    @classmethod
    def load(cls, conn: sa.engine.Connection, source: str, limit: int = LIMIT) -> "IdentityCache":
        cache = cls()
        rows = conn.execute(sa.text(
            "SELECT source_type, source_id, entity_type, name, emails, title, is_internal, attributes "
            "FROM source_identities WHERE source = :s LIMIT :n"), {"s": source, "n": limit + 1}).mappings().all()
        if len(rows) <= limit:
            for row in rows:
                key = model.IdentityKey(source, row["source_type"], row["source_id"])
                cache.known[key] = _identity_from_row(key, row)
            cache.complete.add(source)
        return cache

    def add_written(self, identities: Iterable[model.Identity]) -> None:
        """After a batch committed: what it wrote is now stored."""
        for identity in identities:
            self.known[identity.key] = identity

    def directory(self, conn: sa.engine.Connection) -> DbDirectory:
        return DbDirectory(conn, self)


def _identity_from_row(key: model.IdentityKey, row: Any) -> model.Identity:
    return model.Identity(
        key=key, entity_type=row["entity_type"], name=row["name"], emails=list(row["emails"] or []),
        title=row["title"], is_internal=row["is_internal"], attributes=dict(row["attributes"] or {}))


_MENTION = re.compile(r"<[@#!]?(?:subteam\^)?([A-Za-z0-9_.-]{2,64})")


def _id_candidates(value: Any, out: set[str], depth: int) -> None:
    """Strings in a record that may be identity ids: short values, and ``<@U123>``-style mentions."""
    if isinstance(value, str):
        if len(value) <= 256:
            out.add(value)
        if "<" in value:
            out.update(_MENTION.findall(value))
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        out.add(str(value))
    elif depth < 6 and isinstance(value, dict):
        for v in value.values():
            _id_candidates(v, out, depth + 1)
    elif depth < 6 and isinstance(value, list):
        for v in value:
            _id_candidates(v, out, depth + 1)


@dataclass
class WriteStats:
    interactions: int = 0
    identities: int = 0
    chunks_changed: int = 0
    dead: int = 0
    rechunked: int = 0  # interactions whose chunks were rebuilt (inserted or changed)
    # entities linked to an interaction this batch changed: their cached timelines go stale on commit
    stale_entities: set[str] = field(default_factory=set)


def write_outcome(conn: sa.engine.Connection, outcome: model.Outcome, run_id: Optional[str],
                  source: str, positions: dict[int, Any]) -> WriteStats:
    """Upsert one batch's outcome; ``positions`` maps id(record) to its landing position."""
    stats = WriteStats()
    interactions = _merge_interactions(outcome.interactions)
    with stage("write"):
        turns_of = {i.key: upserts.turn_rows(i) for i in interactions}
        participants_of = {i.key: upserts.participant_rows(i) for i in interactions}
        # partial interactions usually add to a stored row; whole ones are usually new
        stored = upserts.stored_ids(conn, [i.key for i in interactions if i.partial])
    with stage("rechunk"):
        prepared = rechunk.prepare([i for i in interactions if i.key not in stored], turns_of, participants_of)
    with stage("write"):
        identities = _dedupe_identities(outcome.identities)
        upserts.upsert_identities(conn, identities)
        stats.identities = len(identities)
        done = upserts.InteractionWrite()
        first_turns: dict[int, dict] = {}  # stored interactions whose turns all came now
        if interactions:
            upserts.upsert_interactions(conn, interactions, done, {k: h for k, (_, h) in prepared.items()})
            written: set[int] = set()
            done.changed |= upserts.upsert_children(conn, interactions, turns_of, participants_of,
                                                    stored | done.ids, frozenset(done.inserted.values()),
                                                    first_turns, written)
            upserts.queue_for_linking(conn, written | set(done.ids.values()))
            stats.interactions = len(interactions)
        for dead in outcome.dead:
            position = positions.get(id(dead.record))
            record_dead(conn, run_id, source, dead.stream, dead.reason, dead.record, position)
    if interactions:
        with stage("rechunk"):
            stats.chunks_changed = rechunk.write_prepared(conn, prepared, done.inserted)
            # new rows nothing was prepared for (stored a moment before, or so it seemed) are cut
            # now and get their hash by UPDATE
            unprepared = {k: iid for k, iid in done.inserted.items() if k not in prepared}
            heads, turns = rechunk.from_batch(unprepared, interactions, turns_of, participants_of)
            stats.chunks_changed += rechunk.write(conn, heads, turns, stored=False)
            existing = sorted(done.changed - set(done.inserted.values()))
            heads, turns = rechunk.from_db(conn, existing, {i: first_turns[i] for i in existing if i in first_turns})
            stats.chunks_changed += rechunk.write(conn, heads, turns, stored=True)
            stats.rechunked = len(done.inserted) + len(existing)
        if existing:  # new interactions have no links yet: the resolve phase links them
            stats.stale_entities = set(conn.execute(sa.text(
                "SELECT DISTINCT entity_id::text FROM interaction_entities WHERE interaction_id = ANY(:ids)"),
                {"ids": existing}).scalars())
    stats.dead = len(outcome.dead)
    return stats


def record_dead(conn: sa.engine.Connection, run_id: Optional[str], source: str, stream: str,
                reason: str, record: Any, position: Optional[int]) -> None:
    """Keep a bad record whole, cards and SSNs masked, keyed by its position (or content)."""
    safe = pii.mask_obj(record if isinstance(record, dict) else {"raw": record})
    key = str(position) if position is not None else "h:" + hashlib.sha256(
        json.dumps(safe, sort_keys=True, default=str).encode()).hexdigest()[:40]
    stmt = insert(_DL).values(run_id=run_id, source=source, stream=stream, record_key=key,
                              reason=reason[:2000], record=safe)
    conn.execute(stmt.on_conflict_do_update(
        constraint="uq_dead_letters_record",
        set_={"reason": stmt.excluded.reason, "record": stmt.excluded.record, "run_id": stmt.excluded.run_id}))


# ---- identities ----
def _dedupe_identities(items: Iterable[model.Identity]) -> list[model.Identity]:
    latest: dict[model.IdentityKey, model.Identity] = {}
    for identity in items:
        latest[identity.key] = identity  # later records of one batch are newer
    return list(latest.values())


# ---- interactions ----
def _merge_interactions(items: Iterable[model.Interaction]) -> list[model.Interaction]:
    """One interaction per key, later records' fields over earlier ones. The processors' items are
    never modified: a key seen once is passed on as is, and only a key seen again is copied
    before the merge (most keys of a batch are unique, and the copy was a tenth of the write)."""
    merged: dict[model.IdentityKey, model.Interaction] = {}
    copied: set[model.IdentityKey] = set()
    for item in items:
        have = merged.get(item.key)
        if have is None:
            merged[item.key] = item
            continue
        if item.key not in copied:
            have = merged[item.key] = model.Interaction(**{
                **have.__dict__, "turns": list(have.turns), "participants": list(have.participants),
                "companies": list(have.companies), "metadata": dict(have.metadata)})
            copied.add(item.key)
        for name in ("kind", "occurred_at", "title", "body", "duration_s", "direction", "url"):
            value = getattr(item, name)
            if value is not None:
                setattr(have, name, value)
        have.turns.extend(item.turns)
        have.participants.extend(item.participants)
        have.companies.extend(item.companies)
        have.metadata.update(item.metadata)
    return list(merged.values())
