"""Set-based upserts: one ``INSERT … SELECT … ON CONFLICT`` statement per table per batch.

A batch's rows travel as one JSON array (``common.bulk``): one round trip and one statement per
table instead of one per row, and no temporary tables to create.

Every ``DO UPDATE`` carries a ``WHERE (stored) IS DISTINCT FROM (new)``, so a re-delivered record
that changes nothing writes nothing (no dead tuple, no index churn) and is not returned by
``RETURNING``: what comes back is exactly what was inserted or changed, which tells the writer
which interactions need their chunks rebuilt.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import orjson
import sqlalchemy as sa

from common import pii
from common.bulk import distinct as _distinct, execute, payload, record_type as _record_type  # noqa: F401 - API
from ingest_worker import model


# ---- cleaning (what is stored) ----
_SCALARS = frozenset({int, float, bool})


class _NotPlainJson(Exception):
    pass


def clean_text(text: Optional[str]) -> Optional[str]:
    """Text as stored: NUL bytes dropped (Postgres refuses them), cards and SSNs masked (§10)."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "")
    return pii.mask_sensitive(text)


def clean_url(url: Optional[str], own_id: str) -> Optional[str]:
    """A link as stored: like :func:`clean_text`, but the record's own id in it stays (a Gong
    call's link carries its 19-digit id, which passes the Luhn check one time in ten)."""
    if url is None:
        return None
    if "\x00" in url:
        url = url.replace("\x00", "")
    return pii.mask_sensitive(url, keep=(own_id,))


def _clean_json(value: Any) -> Any:
    if type(value) is str:
        return _clean_str(value)
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _NotPlainJson
            if "\x00" in k:
                k = k.replace("\x00", "")
            if type(v) is str:  # most values: inline, no call at all for short NUL-free ones
                out[k] = v if len(v) < _MASK_MIN_LEN and "\x00" not in v or pii.is_identifier(k, v) else _clean_str(v)
            elif pii.is_identifier(k, v):
                out[k] = v
            elif v is None or type(v) in _SCALARS:
                out[k] = v
            else:
                out[k] = _clean_json(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    raise _NotPlainJson


_mask = pii.mask_sensitive
_MASK_MIN_LEN = pii.SENSITIVE_MIN_LEN  # shorter strings cannot hold a card or an SSN


def _clean_str(value: str) -> str:
    return _mask(value.replace("\x00", "") if "\x00" in value else value)


def _refuse(value: Any) -> Any:
    raise TypeError


# datetimes, dataclasses and str/dict subclasses go to ``_refuse`` instead of orjson's own encoding
_PLAIN_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def clean_json(value: Any) -> Any:
    """JSON-safe value for jsonb columns: NULs dropped, cards and SSNs masked (never stored in clear).

    Most values need no change: one orjson serialisation and a byte scan (``pii.may_hold_sensitive``)
    prove it, and the value itself is returned (it is serialised again for the statement, which
    costs less than walking it in Python: the walk was a sixth of the ingest's Python time).
    Plain JSON values that need a change take one walk; anything else (datetimes, non-string keys,
    integers past 64 bits) goes through a JSON round trip first, as ``json.dumps(default=str)``
    would store it.
    """
    try:
        text = orjson.dumps(value, default=_refuse, option=_PLAIN_ONLY)
    except TypeError:
        text = None
    if text is not None and b"\\u0000" not in text and not pii.may_hold_sensitive(text):
        return value
    try:
        return _clean_json(value)
    except _NotPlainJson:
        return pii.mask_obj(json.loads(json.dumps(value, default=str).replace("\\u0000", "")))


# ---- identities ----
_IDENTITY_COLUMNS = (("entity_type", "text"), ("name", "text"), ("emails", "jsonb"), ("phone", "text"),
                     ("title", "text"), ("company_name", "text"), ("domains", "jsonb"),
                     ("company_source_type", "text"), ("company_source_id", "text"),
                     ("is_internal", "boolean"), ("attributes", "jsonb"))
_KEY = (("source", "text"), ("source_type", "text"), ("source_id", "text"))


def _identity_sql() -> str:
    names = [c for c, _ in _IDENTITY_COLUMNS]
    new = {c: f"excluded.{c}" for c in names}
    return (
        f"INSERT INTO source_identities AS t (source, source_type, source_id, {', '.join(names)}, resolved) "
        f"SELECT r.source, r.source_type, r.source_id, {', '.join('r.' + c for c in names)}, false "
        f"FROM json_to_recordset(%(rows)s::json) AS r({_record_type(_KEY + _IDENTITY_COLUMNS)}) "
        f"ON CONFLICT (source, source_type, source_id) DO UPDATE SET "
        f"{', '.join(f'{c} = excluded.{c}' for c in names)}, resolved = false, updated_at = now() "
        f"WHERE {_distinct('t', new)}")


_IDENTITY_SQL = _identity_sql()


def identity_row(i: model.Identity) -> dict:
    return {
        "source": i.key.source, "source_type": i.key.source_type, "source_id": i.key.source_id,
        "entity_type": i.entity_type, "name": i.name, "emails": list(dict.fromkeys(i.emails)),
        "phone": i.phone, "title": i.title, "company_name": i.company_name,
        "domains": list(dict.fromkeys(i.domains)),
        "company_source_type": i.company_key.source_type if i.company_key else None,
        "company_source_id": i.company_key.source_id if i.company_key else None,
        "is_internal": i.is_internal, "attributes": clean_json(i.attributes),
    }


def upsert_identities(conn: sa.engine.Connection, identities: list[model.Identity]) -> None:
    """Keys must be unique within ``identities`` (ON CONFLICT cannot touch a row twice)."""
    if identities:
        execute(conn, _IDENTITY_SQL, [identity_row(i) for i in identities])


# ---- interactions ----
_INTERACTION_COLUMNS = (("kind", "text"), ("occurred_at", "timestamptz"), ("title", "text"), ("body", "text"),
                        ("duration_s", "float8"), ("direction", "text"), ("url", "text"),
                        ("metadata", "jsonb"), ("deleted", "boolean"))
_KEEP_IF_NULL = ("occurred_at", "title", "body", "duration_s", "direction", "url")
# Set on insert only: a stored row's hash is recomputed from its merged stored state (rechunk).
_INSERT_ONLY = (("content_hash", "text"),)


def _interaction_sql(partial: bool) -> str:
    names = [c for c, _ in _INTERACTION_COLUMNS + _INSERT_ONLY]
    new = {"kind": "excluded.kind"}
    new |= {c: f"coalesce(excluded.{c}, t.{c})" for c in _KEEP_IF_NULL}
    new["metadata"] = "t.metadata || excluded.metadata"
    if not partial:  # only the stream that owns an interaction knows whether the source deleted it
        new["deleted"] = "excluded.deleted"
    return (
        f"INSERT INTO interactions AS t (source, source_type, source_id, {', '.join(names)}) "
        f"SELECT r.source, r.source_type, r.source_id, {', '.join('r.' + c for c in names)} "
        f"FROM json_to_recordset(%(rows)s::json) AS r({_record_type(_KEY + _INTERACTION_COLUMNS + _INSERT_ONLY)}) "
        f"ON CONFLICT ON CONSTRAINT uq_interactions_source_key DO UPDATE SET "
        f"{', '.join(f'{c} = {v}' for c, v in new.items())}, updated_at = now() "
        f"WHERE {_distinct('t', new)} "
        f"RETURNING t.id, t.source, t.source_type, t.source_id, (t.xmax = 0) AS inserted")


_INTERACTION_SQL = {False: _interaction_sql(False), True: _interaction_sql(True)}


@dataclass
class InteractionWrite:
    """What the interaction upserts did: ids of rows inserted, and of rows whose stored state changed."""

    inserted: dict[model.IdentityKey, int] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)
    ids: dict[model.IdentityKey, int] = field(default_factory=dict)  # every id RETURNING gave


def upsert_interactions(conn: sa.engine.Connection, items: list[model.Interaction], done: InteractionWrite,
                        hashes: Optional[dict[model.IdentityKey, str]] = None) -> None:
    """Full records also carry deletion; partial ones (turns from another stream) never touch it.

    ``hashes`` are content hashes for rows that turn out new (``rechunk.prepare``); a stored
    row keeps its own. Keys must be unique within ``items``.
    """
    hashes = hashes or {}
    for partial in (False, True):
        rows = [{
            "source": i.key.source, "source_type": i.key.source_type, "source_id": i.key.source_id,
            "kind": i.kind, "occurred_at": i.occurred_at, "title": clean_text(i.title), "body": clean_text(i.body),
            "duration_s": i.duration_s, "direction": i.direction,
            "url": clean_url(i.url, i.key.source_id),
            "metadata": clean_json(i.metadata), "deleted": bool(i.metadata.get("deleted")) and not partial,
            "content_hash": hashes.get(i.key),
        } for i in items if i.partial is partial]
        if not rows:
            continue
        for iid, source, source_type, source_id, inserted in execute(conn, _INTERACTION_SQL[partial], rows):
            key = model.IdentityKey(source, source_type, source_id)
            done.ids[key] = iid
            if inserted:
                done.inserted[key] = iid
            else:
                done.changed.add(iid)


# ---- turns, participants, companies (each row carries its interaction's id) ----
# Ids come from the interaction upsert's RETURNING (inserted or changed rows), from the writer's
# look-up of stored partial interactions, or from one query for the rest (``stored_ids``): one
# index probe per interaction, where matching every child row by key in SQL cost one probe per
# turn (a Gong call has dozens) and sent the three key strings with every row.
_IDS_SQL = (
    "SELECT i.id, i.source, i.source_type, i.source_id FROM json_to_recordset(%(rows)s::json) "
    "AS k(source text, source_type text, source_id text) JOIN interactions i "
    "ON i.source = k.source AND i.source_type = k.source_type AND i.source_id = k.source_id")
_CHILD_ROWS = "json_to_recordset(%(rows)s::json) AS r({columns})"
_IID = (("interaction_id", "bigint"),)


def stored_ids(conn: sa.engine.Connection, keys: Iterable[model.IdentityKey]) -> dict[model.IdentityKey, int]:
    """Ids of the stored interactions among ``keys`` (absent keys are left out)."""
    rows = [{"source": k.source, "source_type": k.source_type, "source_id": k.source_id} for k in keys]
    if not rows:
        return {}
    return {model.IdentityKey(source, source_type, source_id): iid
            for iid, source, source_type, source_id in execute(conn, _IDS_SQL, rows)}


_TURN_COLUMNS = (("turn_key", "text"), ("start_ms", "bigint"), ("end_ms", "bigint"), ("speaker_id", "text"),
                 ("speaker_name", "text"), ("speaker_source_type", "text"), ("speaker_source_id", "text"),
                 ("topic", "text"), ("text", "text"))
_PARTICIPANT_COLUMNS = (("participant_key", "text"), ("role", "text"), ("source_type_", "text"),
                        ("source_id_", "text"), ("name", "text"), ("email", "text"), ("affiliation", "text"),
                        ("speaker_id", "text"))


def _turn_sql() -> tuple[str, str]:
    names = [c for c, _ in _TURN_COLUMNS]
    new = {c: f"excluded.{c}" for c in names if c not in ("turn_key", "speaker_name")}
    new["speaker_name"] = "coalesce(excluded.speaker_name, t.speaker_name)"
    return (
        f"INSERT INTO interaction_turns AS t (interaction_id, {', '.join(names)}) "
        f"SELECT r.interaction_id, {', '.join('r.' + c for c in names)} "
        f"FROM {_CHILD_ROWS.format(columns=_record_type(_IID + _TURN_COLUMNS))}"), (
        f" ON CONFLICT (interaction_id, turn_key) DO UPDATE SET {', '.join(f'{c} = {v}' for c, v in new.items())} "
        f"WHERE {_distinct('t', new)} RETURNING t.interaction_id")


def _participant_sql() -> tuple[str, str]:
    # source_type/source_id of the participant's identity are suffixed: the key columns name the interaction
    stored = ["participant_key", "role", "source_type", "source_id", "name", "email", "affiliation", "speaker_id"]
    given = [c for c, _ in _PARTICIPANT_COLUMNS]
    new = {c: f"coalesce(excluded.{c}, t.{c})" for c in stored if c != "participant_key"}
    return (
        f"INSERT INTO participants AS t (interaction_id, {', '.join(stored)}) "
        f"SELECT r.interaction_id, {', '.join('r.' + c for c in given)} "
        f"FROM {_CHILD_ROWS.format(columns=_record_type(_IID + _PARTICIPANT_COLUMNS))}"), (
        f" ON CONFLICT (interaction_id, participant_key) DO UPDATE SET "
        f"{', '.join(f'{c} = {v}' for c, v in new.items())} "
        f"WHERE {_distinct('t', new)} RETURNING t.interaction_id")


# Each child statement in two parts: the INSERT, and the conflict clause that makes it an upsert.
# Rows of an interaction this transaction inserted go in by the INSERT alone: such an interaction
# has no children yet (they would have been deleted with any earlier row of its key, by cascade),
# and skipping the conflict check (speculative insertion, RETURNING) saves about a third of the
# statement's server time. A violated assumption fails the batch loudly; it never doubles a row.
_TURN_SQL = _turn_sql()
_PARTICIPANT_SQL = _participant_sql()
_COMPANY_SQL = (
    "INSERT INTO interaction_companies (interaction_id, source_type, source_id) "
    "SELECT r.interaction_id, r.company_source_type, r.company_source_id "
    f"FROM {_CHILD_ROWS.format(columns=_record_type(_IID) + ', company_source_type text, company_source_id text')}",
    " ON CONFLICT DO NOTHING")


# Stored interactions among the ids that have no turn yet (one key probe each): typically a Gong
# call whose transcript lands now, in a later batch than the call.
_TURNLESS_SQL = (
    "SELECT k.iid FROM unnest(CAST(%(ids)s AS bigint[])) AS k(iid) "
    "WHERE NOT EXISTS (SELECT 1 FROM interaction_turns t WHERE t.interaction_id = k.iid)")


def _turnless(conn: sa.engine.Connection, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    return {iid for (iid,) in conn.exec_driver_sql(_TURNLESS_SQL, {"ids": sorted(ids)})}


def _insert_children(conn: sa.engine.Connection, sql: tuple[str, str], rows: list[dict], new_ids: set[int]) -> list:
    """Rows of new interactions by plain INSERT, the others by upsert; returns what the upsert returned."""
    fresh = [r for r in rows if r["interaction_id"] in new_ids]
    rest = [r for r in rows if r["interaction_id"] not in new_ids] if fresh else rows
    if fresh:
        execute(conn, sql[0], fresh)
    return execute(conn, sql[0] + sql[1], rest) if rest else []


def participant_key(p: model.Participant) -> Optional[str]:
    """Identity source_id when known, else the email, else the name: stable across re-delivery."""
    pkey = (p.identity.source_id if p.identity else None) or (p.email or "").lower() or p.name
    return pkey[:320] if pkey else None


def turn_rows(item: model.Interaction) -> dict[str, dict]:
    """The interaction's turns as stored, unique by turn_key (the last one wins)."""
    rows: dict[str, dict] = {}
    for t in item.turns:
        rows[t.turn_key] = {
            "turn_key": t.turn_key, "start_ms": t.start_ms, "end_ms": t.end_ms,
            "speaker_id": t.speaker_id, "speaker_name": t.speaker_name,
            "speaker_source_type": t.speaker_identity.source_type if t.speaker_identity else None,
            "speaker_source_id": t.speaker_identity.source_id if t.speaker_identity else None,
            "topic": t.topic, "text": clean_text(t.text) or ""}
    return rows


def participant_rows(item: model.Interaction) -> dict[str, dict]:
    """The interaction's participants as stored, unique by participant key (the last one wins)."""
    rows: dict[str, dict] = {}
    for p in item.participants:
        pkey = participant_key(p)
        if pkey:
            rows[pkey] = {
                "participant_key": pkey, "role": p.role,
                "source_type_": p.identity.source_type if p.identity else None,
                "source_id_": p.identity.source_id if p.identity else None,
                "name": p.name, "email": p.email, "affiliation": p.affiliation, "speaker_id": p.speaker_id}
    return rows


def upsert_children(conn: sa.engine.Connection, items: list[model.Interaction],
                    turns_of: dict[model.IdentityKey, dict], participants_of: dict[model.IdentityKey, dict],
                    ids: Optional[dict[model.IdentityKey, int]] = None, new_ids: frozenset[int] = frozenset(),
                    first_turns: Optional[dict[int, dict]] = None, written: Optional[set[int]] = None) -> set[int]:
    """Upsert turns, participants and company links; returns ids of interactions whose turns or
    participants changed (their chunks may read differently). ``ids`` holds the interaction ids
    already known; the others are looked up by key, and an item with no stored interaction gets
    no child rows. ``new_ids`` are interactions inserted by this transaction (no children yet).
    ``first_turns``, when given, receives the turn rows of stored interactions that had no turn
    before this batch, by id: their stored turns are now exactly these rows. ``written``, when
    given, receives the ids of every interaction child rows were sent for (changed or not)."""
    ids = dict(ids or {})
    ids.update(stored_ids(conn, [i.key for i in items if i.key not in ids and (
        turns_of[i.key] or participants_of[i.key] or i.companies)]))
    turns, participants, companies = [], [], []
    for item in items:
        iid = ids.get(item.key)
        if iid is None:
            continue
        key = {"interaction_id": iid}
        turns.extend(key | row for row in turns_of[item.key].values())
        participants.extend(key | row for row in participants_of[item.key].values())
        for c in dict.fromkeys(item.companies):
            companies.append(key | {"company_source_type": c.source_type, "company_source_id": c.source_id})
        if written is not None and (turns_of[item.key] or participants_of[item.key] or item.companies):
            written.add(iid)
    changed: set[int] = set()
    if turns:
        # Turns of a stored interaction with none yet go in by plain INSERT too. The batch's
        # interaction upsert locked its row (ON CONFLICT locks even when its WHERE skips the
        # update) and every writer of turns upserts the interaction first, so no other
        # transaction can add turns between this look-up and the insert.
        turnless = _turnless(conn, {r["interaction_id"] for r in turns} - new_ids)
        changed |= turnless  # they gain turns: their chunks change
        changed.update(r[0] for r in _insert_children(conn, _TURN_SQL, turns, new_ids | turnless))
        if first_turns is not None and turnless:
            first_turns.update((ids[i.key], turns_of[i.key]) for i in items if ids.get(i.key) in turnless)
    if participants:
        changed.update(r[0] for r in _insert_children(conn, _PARTICIPANT_SQL, participants, new_ids))
    if companies:
        _insert_children(conn, _COMPANY_SQL, companies, new_ids)
    return changed


# ---- the resolve phase's queue ----
_TO_LINK_SQL = ("INSERT INTO interactions_to_link (interaction_id) SELECT unnest(CAST(%(ids)s AS bigint[])) "
                "ON CONFLICT DO NOTHING")


def queue_for_linking(conn: sa.engine.Connection, ids: Iterable[int]) -> None:
    """Queue interactions whose entity links the next resolve run re-derives (``resolve_worker/links.py``).

    Every writer of interactions, participants, turns or company associations calls this in its
    transaction with every interaction it wrote, changed or not: a link re-derived for nothing
    costs a comparison, a missed one stays wrong until a full run. One statement per batch: the
    same queue filled by triggers cost a third of the ingest's throughput (transition tables of
    every turn written)."""
    ids = sorted(set(ids))
    if ids:
        conn.exec_driver_sql(_TO_LINK_SQL, {"ids": ids})
