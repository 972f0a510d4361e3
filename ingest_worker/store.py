"""The writer: upserts what processors produced, re-chunks what changed, records dead letters.

Everything is keyed on ``(source, source_type, source_id)`` (DESIGN §4), so Airbyte's
at-least-once delivery has an exactly-once effect. Duplicates inside one batch are merged first
(Postgres refuses to upsert the same key twice in one statement). Partial interactions from
different streams merge: a field left None never overwrites a stored value.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from common import chunking, pii
from common.models import (Chunk, DeadLetter, Interaction, InteractionCompany, InteractionTurn,
                           Participant, SourceIdentity)
from ingest_worker import model

_I = Interaction.__table__
_T = InteractionTurn.__table__
_P = Participant.__table__
_C = InteractionCompany.__table__
_CH = Chunk.__table__
_SI = SourceIdentity.__table__
_DL = DeadLetter.__table__

#: Seconds spent per stage of the process phase in this process (bench/ingest.py reads it).
STAGE_SECONDS: dict[str, float] = defaultdict(float)


@contextmanager
def stage(name: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS[name] += time.perf_counter() - started


class DbDirectory:
    """Identity lookups for processors (names for Slack mentions, Gong speakers), cached per task."""

    def __init__(self, conn: sa.engine.Connection):
        self.conn = conn
        self._cache: dict[model.IdentityKey, Optional[model.Identity]] = {}
        self._absent: set[tuple[str, str]] = set()  # (source, source_id) known to match no identity

    def add(self, identity: model.Identity) -> None:
        self._cache[identity.key] = identity

    def preload(self, source: str, records: Iterable[Any]) -> None:
        """One query for every identity of ``source`` whose id appears in ``records``.

        Ids found are cached; ids not found are known absent, so ``get`` skips the per-key query.
        Keys no record spells out (ids inside free text, other sources) still fall back to it.
        """
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
            row = self.conn.execute(sa.select(_SI).where(
                _SI.c.source == key.source, _SI.c.source_type == key.source_type,
                _SI.c.source_id == key.source_id)).mappings().first()
            self._cache[key] = None if row is None else _identity_from_row(key, row)
        return self._cache[key]


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


def write_outcome(conn: sa.engine.Connection, outcome: model.Outcome, run_id: Optional[str],
                  source: str, positions: dict[int, int]) -> WriteStats:
    """Upsert one batch's outcome; ``positions`` maps id(record) to its landing position."""
    stats = WriteStats()
    ids: dict = {}
    with stage("write"):
        identities = _dedupe_identities(outcome.identities)
        if identities:
            conn.execute(_upsert_identities().returning(_SI.c.source_id), [_identity_row(i) for i in identities])
            stats.identities = len(identities)
        interactions = _merge_interactions(outcome.interactions)
        if interactions:
            ids = _upsert_interactions(conn, interactions)
            _upsert_children(conn, interactions, ids)
            stats.interactions = len(interactions)
        for dead in outcome.dead:
            position = positions.get(id(dead.record))
            record_dead(conn, run_id, source, dead.stream, dead.reason, dead.record, position)
    if interactions:
        with stage("rechunk"):
            stats.chunks_changed = rechunk(conn, sorted(set(ids.values())))
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


def _identity_row(i: model.Identity) -> dict:
    return {
        "source": i.key.source, "source_type": i.key.source_type, "source_id": i.key.source_id,
        "entity_type": i.entity_type, "name": i.name, "emails": list(dict.fromkeys(i.emails)),
        "phone": i.phone, "title": i.title, "company_name": i.company_name,
        "domains": list(dict.fromkeys(i.domains)),
        "company_source_type": i.company_key.source_type if i.company_key else None,
        "company_source_id": i.company_key.source_id if i.company_key else None,
        "is_internal": i.is_internal, "attributes": _jsonable(i.attributes), "resolved": False,
    }


def _upsert_identities():
    stmt = insert(_SI)
    keep = ("source", "source_type", "source_id")
    return stmt.on_conflict_do_update(
        index_elements=list(keep),
        set_={c.name: stmt.excluded[c.name] for c in _SI.columns if c.name not in keep and c.name != "updated_at"}
        | {"updated_at": sa.func.now()})


# ---- interactions ----
def _merge_interactions(items: Iterable[model.Interaction]) -> list[model.Interaction]:
    merged: dict[model.IdentityKey, model.Interaction] = {}
    for item in items:
        have = merged.get(item.key)
        if have is None:
            merged[item.key] = model.Interaction(**{**item.__dict__, "turns": list(item.turns),
                                                    "participants": list(item.participants),
                                                    "companies": list(item.companies),
                                                    "metadata": dict(item.metadata)})
            continue
        for name in ("kind", "occurred_at", "title", "body", "duration_s", "direction", "url"):
            value = getattr(item, name)
            if value is not None:
                setattr(have, name, value)
        have.turns.extend(item.turns)
        have.participants.extend(item.participants)
        have.companies.extend(item.companies)
        have.metadata.update(item.metadata)
    return list(merged.values())


def _upsert_interactions(conn: sa.engine.Connection, items: list[model.Interaction]) -> dict:
    """Upsert interactions; full records also carry deletion (archived/IsDeleted at the source).

    Partial records (turns from another stream) never touch ``deleted``: only the stream that
    owns the interaction knows whether the source deleted it.
    """
    ids: dict[model.IdentityKey, int] = {}
    for partial in (False, True):
        chosen = [i for i in items if i.partial is partial]
        if not chosen:
            continue
        rows = [{
            "source": i.key.source, "source_type": i.key.source_type, "source_id": i.key.source_id,
            "kind": i.kind, "occurred_at": i.occurred_at, "title": _clean(i.title), "body": _clean(i.body),
            "duration_s": i.duration_s, "direction": i.direction, "url": i.url,
            "metadata": _jsonable(i.metadata), "deleted": bool(i.metadata.get("deleted")) and not partial,
        } for i in chosen]
        stmt = insert(_I)
        update = {name: sa.func.coalesce(stmt.excluded[name], _I.c[name])
                  for name in ("occurred_at", "title", "body", "duration_s", "direction", "url")}
        update |= {"kind": stmt.excluded.kind, "updated_at": sa.func.now(),
                   "metadata": _I.c.metadata.op("||")(stmt.excluded.metadata)}
        if not partial:
            update["deleted"] = stmt.excluded.deleted
        stmt = stmt.on_conflict_do_update(constraint="uq_interactions_source_key", set_=update).returning(
            _I.c.id, _I.c.source, _I.c.source_type, _I.c.source_id)
        for row in conn.execute(stmt, rows).all():
            ids[model.IdentityKey(row.source, row.source_type, row.source_id)] = row.id
    return ids


def _upsert_children(conn: sa.engine.Connection, items: list[model.Interaction], ids: dict) -> None:
    turns: dict[tuple, dict] = {}
    participants: dict[tuple, dict] = {}
    companies: set[tuple] = set()
    for item in items:
        iid = ids[item.key]
        for t in item.turns:
            turns[(iid, t.turn_key)] = {
                "interaction_id": iid, "turn_key": t.turn_key, "start_ms": t.start_ms, "end_ms": t.end_ms,
                "speaker_id": t.speaker_id, "speaker_name": t.speaker_name,
                "speaker_source_type": t.speaker_identity.source_type if t.speaker_identity else None,
                "speaker_source_id": t.speaker_identity.source_id if t.speaker_identity else None,
                "topic": t.topic, "text": _clean(t.text) or ""}
        for p in item.participants:
            pkey = (p.identity.source_id if p.identity else None) or (p.email or "").lower() or p.name
            if not pkey:
                continue
            participants[(iid, pkey[:320])] = {
                "interaction_id": iid, "participant_key": pkey[:320], "role": p.role,
                "source_type": p.identity.source_type if p.identity else None,
                "source_id": p.identity.source_id if p.identity else None,
                "name": p.name, "email": p.email, "affiliation": p.affiliation, "speaker_id": p.speaker_id}
        for c in item.companies:
            companies.add((iid, c.source_type, c.source_id))
    if turns:
        stmt = insert(_T)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["interaction_id", "turn_key"],
            set_={c: stmt.excluded[c] for c in ("start_ms", "end_ms", "speaker_id", "speaker_source_type",
                                                  "speaker_source_id", "topic", "text")}
            | {"speaker_name": sa.func.coalesce(stmt.excluded.speaker_name, _T.c.speaker_name)})
            .returning(_T.c.interaction_id), list(turns.values()))
    if participants:
        stmt = insert(_P)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["interaction_id", "participant_key"],
            set_={c: sa.func.coalesce(stmt.excluded[c], _P.c[c])
                  for c in ("role", "source_type", "source_id", "name", "email", "affiliation", "speaker_id")})
            .returning(_P.c.interaction_id), list(participants.values()))
    if companies:
        conn.execute(insert(_C).on_conflict_do_nothing().returning(_C.c.interaction_id),
                     [{"interaction_id": i, "source_type": t, "source_id": s} for i, t, s in companies])


# ---- chunks ----
def rechunk(conn: sa.engine.Connection, interaction_ids: list[int]) -> int:
    """Rebuild the chunks of these interactions from their stored state; returns chunks changed."""
    if not interaction_ids:
        return 0
    heads = conn.execute(sa.select(_I.c.id, _I.c.source, _I.c.source_type, _I.c.source_id, _I.c.kind,
                                   _I.c.title, _I.c.body, _I.c.deleted).where(_I.c.id.in_(interaction_ids))).all()
    turn_rows = conn.execute(sa.select(_T).where(_T.c.interaction_id.in_(interaction_ids))
                             .order_by(_T.c.interaction_id, _T.c.start_ms, _T.c.turn_key)).mappings().all()
    speakers = conn.execute(sa.select(_P.c.interaction_id, _P.c.speaker_id, _P.c.name).where(
        _P.c.interaction_id.in_(interaction_ids), _P.c.speaker_id.isnot(None))).all()
    existing = conn.execute(sa.select(_CH.c.id, _CH.c.content_hash).where(
        _CH.c.interaction_id.in_(interaction_ids))).all()
    old_hash = {str(r.id): r.content_hash for r in existing}
    names = {(r.interaction_id, r.speaker_id): r.name for r in speakers}
    by_interaction: dict[int, list[dict]] = {}
    for t in turn_rows:
        name = t["speaker_name"] or names.get((t["interaction_id"], t["speaker_id"])) or t["speaker_id"]
        by_interaction.setdefault(t["interaction_id"], []).append(
            {"text": t["text"], "start_ms": t["start_ms"], "end_ms": t["end_ms"], "speaker_name": name})
    rows, keep_counts, hashes = [], {}, []
    for head in heads:
        key = f"{head.source}:{head.source_type}:{head.source_id}"
        # a deletion at the source removes the text from search: no chunks, so no vectors (cascade)
        drafts = [] if head.deleted else chunking.chunk_interaction(
            key, head.kind, head.title, head.body, by_interaction.get(head.id, []))
        keep_counts[head.id] = len(drafts)
        digest = hashlib.sha256("".join(d.content_hash for d in drafts).encode()).hexdigest()
        hashes.append({"iid": head.id, "h": digest})
        for d in drafts:
            rows.append({"id": d.chunk_id, "interaction_id": head.id, "ordinal": d.ordinal, "text": d.text,
                         "token_count": d.token_count, "start_ms": d.start_ms, "end_ms": d.end_ms,
                         "speakers": list(d.speakers), "content_hash": d.content_hash})
    changed = sum(1 for r in rows if old_hash.get(str(r["id"])) != r["content_hash"])
    if rows:
        stmt = insert(_CH)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={c: stmt.excluded[c] for c in ("ordinal", "text", "token_count", "start_ms", "end_ms",
                                                  "speakers", "content_hash")}).returning(_CH.c.id), rows)
    if keep_counts:
        conn.execute(sa.text(
            "DELETE FROM chunks c USING unnest(CAST(:ids AS bigint[]), CAST(:counts AS int[])) AS k(iid, n) "
            "WHERE c.interaction_id = k.iid AND c.ordinal >= k.n"),
            {"ids": list(keep_counts), "counts": list(keep_counts.values())})
    if hashes:
        conn.execute(sa.text(
            "UPDATE interactions i SET content_hash = v.h "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:hs AS text[])) AS v(iid, h) WHERE i.id = v.iid"),
            {"ids": [h["iid"] for h in hashes], "hs": [h["h"] for h in hashes]})
    return changed


def _clean(text: Optional[str]) -> Optional[str]:
    """Text as stored: NUL bytes dropped (Postgres refuses them), cards and SSNs masked (§10)."""
    if text is None:
        return None
    return pii.mask_sensitive(text.replace("\x00", ""))


def _jsonable(value: Any) -> Any:
    """JSON-safe copy for jsonb columns: NULs dropped, cards and SSNs masked (never stored in clear)."""
    return pii.mask_obj(json.loads(json.dumps(value, default=str).replace("\\u0000", "")))
