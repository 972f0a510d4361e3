"""Manual overrides (merge, split, pin) and the evidence behind a mapping, against Postgres.

Each override is stored in ``entity_overrides`` and applied at once by an incremental resolve run;
every later run (incremental or full) applies it again, so evidence never undoes it.
"""
from __future__ import annotations

import json
import uuid
from typing import Optional

import sqlalchemy as sa

from common import db
from common.settings import Settings
from resolve_worker import cache, entities


class OverrideError(ValueError):
    """The override names something that does not exist or does not fit (a clear message)."""


def _members(conn: sa.engine.Connection, entity_id: str) -> tuple[str, list[list[str]]]:
    rows = conn.execute(sa.text("SELECT source, source_type, source_id, entity_type FROM entity_mappings "
                                "WHERE entity_id = CAST(:e AS uuid) ORDER BY 1, 2, 3"), {"e": entity_id}).all()
    if not rows:
        raise OverrideError(f"no entity {entity_id}")
    return rows[0].entity_type, [[r.source, r.source_type, r.source_id] for r in rows]


def _record(conn: sa.engine.Connection, action: str, entity_type: str, entity_id: str, keys: list,
            apart: Optional[list] = None, actor: str = "cli") -> None:
    conn.execute(sa.text(
        "INSERT INTO entity_overrides (action, entity_type, entity_id, identity_keys, apart_keys, actor) "
        "VALUES (:a, :t, CAST(:e AS uuid), CAST(:k AS jsonb), CAST(:p AS jsonb), :actor)"),
        {"a": action, "t": entity_type, "e": entity_id, "k": json.dumps(keys), "p": json.dumps(apart or []),
         "actor": actor})


def _check_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise OverrideError(f"not an entity id: {value!r}") from exc


def merge(settings: Settings, keep_id: str, other_id: str, actor: str = "cli") -> dict:
    """``other_id`` joins ``keep_id``: all their identities become one entity, for good."""
    keep_id, other_id = _check_uuid(keep_id), _check_uuid(other_id)
    if keep_id == other_id:
        raise OverrideError("merging an entity with itself")
    with db.transaction(settings) as conn:
        type_a, keys_a = _members(conn, keep_id)
        type_b, keys_b = _members(conn, other_id)
        if type_a != type_b:
            raise OverrideError(f"cannot merge a {type_a} with a {type_b}")
        _record(conn, "merge", type_a, keep_id, keys_a + keys_b, actor=actor)
    cache.invalidate(settings, [tuple(k) for k in keys_a + keys_b])
    stats = entities.resolve_all(settings)
    return {"entity_id": keep_id, "identities": len(keys_a) + len(keys_b), "resolve": stats.__dict__}


def split(settings: Settings, entity_id: str, keys: list[tuple[str, str, str]], actor: str = "cli") -> dict:
    """The given identities leave ``entity_id`` and become a new entity kept apart from it."""
    entity_id = _check_uuid(entity_id)
    wanted = [list(k) for k in keys]
    with db.transaction(settings) as conn:
        entity_type, members = _members(conn, entity_id)
        missing = [k for k in wanted if k not in members]
        if missing:
            raise OverrideError(f"not identities of {entity_id}: {missing}")
        rest = [k for k in members if k not in wanted]
        if not rest:
            raise OverrideError("a split must leave at least one identity behind")
        new_id = str(uuid.uuid4())
        _record(conn, "split", entity_type, new_id, wanted, rest, actor=actor)
    cache.invalidate(settings, [tuple(k) for k in members])
    stats = entities.resolve_all(settings)
    return {"entity_id": new_id, "split_from": entity_id, "identities": len(wanted), "resolve": stats.__dict__}


def pin(settings: Settings, key: tuple[str, str, str], entity_id: str, actor: str = "cli") -> dict:
    """The identity belongs to ``entity_id`` whatever the evidence says."""
    entity_id = _check_uuid(entity_id)
    with db.transaction(settings) as conn:
        entity_type, _ = _members(conn, entity_id)
        own = conn.execute(sa.text("SELECT entity_type FROM source_identities WHERE source = :s AND "
                                   "source_type = :t AND source_id = :i"),
                           {"s": key[0], "t": key[1], "i": key[2]}).scalar()
        if own is None:
            raise OverrideError(f"no identity {'/'.join(key)}")
        if own != entity_type:
            raise OverrideError(f"cannot pin a {own} identity to a {entity_type}")
        _record(conn, "pin", entity_type, entity_id, [list(key)], actor=actor)
    cache.invalidate(settings, [tuple(key)])
    stats = entities.resolve_all(settings)
    return {"entity_id": entity_id, "identity": list(key), "resolve": stats.__dict__}


def evidence(conn: sa.engine.Connection, entity_id: str) -> list[dict]:
    """Why each identity belongs to the entity: method, confidence, matched values, linked identity."""
    rows = conn.execute(sa.text(
        "SELECT source, source_type, source_id, method, confidence, evidence, pinned FROM entity_mappings "
        "WHERE entity_id = CAST(:e AS uuid) ORDER BY source, source_type, source_id"), {"e": entity_id}).mappings()
    return [{"identity": [r["source"], r["source_type"], r["source_id"]], "method": r["method"],
             "confidence": r["confidence"], "pinned": r["pinned"], **(r["evidence"] or {})} for r in rows]
