"""Read-side service functions shared by the HTTP API, the CLI summary and (later) MCP tools."""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Optional

import sqlalchemy as sa

from common import db
from common.settings import Settings
from embed_worker.stores import SearchFilters, interaction_filter_sql


class NotFound(LookupError):
    pass


class BadRequest(ValueError):
    pass


def is_text(value: str) -> bool:
    """Text Postgres can store and UTF-8 can encode: no NUL, no unpaired surrogate (JSON's
    ``\\u0000`` and ``\\ud800`` make both)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_text(name: str, value: str) -> str:
    if not is_text(value):
        raise BadRequest(f"{name} holds a NUL character or an unpaired surrogate")
    return value


def encode_cursor(occurred_at: Optional[dt.datetime], interaction_id: int) -> str:
    raw = json.dumps([occurred_at.isoformat() if occurred_at else None, interaction_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Optional[dt.datetime], int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, iid = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        return (dt.datetime.fromisoformat(at) if at else None), int(iid)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise BadRequest("cursor is not one this API returned") from None


def parse_uuid(value: str, name: str = "entity_id") -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise BadRequest(f"{name} must be a UUID") from None


TIMELINE_SQL = (
    "SELECT i.id, i.source, i.source_type, i.source_id, i.kind, i.occurred_at, i.title, i.url, "
    "left(coalesce(i.body, (SELECT string_agg(t.text, ' ' ORDER BY t.start_ms) FROM interaction_turns t "
    "WHERE t.interaction_id = i.id)), 280) AS snippet "
    "FROM interaction_entities ie JOIN interactions i ON i.id = ie.interaction_id "
    "WHERE ie.entity_id = :eid AND i.occurred_at IS NOT NULL AND NOT i.deleted{where} "
    "ORDER BY i.occurred_at DESC, i.id DESC{limit}")


def timeline_item(row: dict) -> dict:
    return dict(row) | {"occurred_at": row["occurred_at"].isoformat()}


def timeline(settings: Settings, entity_id: str, *, start: Optional[dt.datetime] = None,
             end: Optional[dt.datetime] = None, sources: Optional[list[str]] = None,
             kinds: Optional[list[str]] = None, limit: int = 50, cursor: Optional[str] = None) -> dict:
    """Interactions of a person or company, newest first, keyset-paginated on (occurred_at, id).

    This is the cold tier; the API serves it through ``common.timeline_cache``."""
    entity_id = parse_uuid(entity_id)
    params: dict = {"eid": entity_id, "limit": limit + 1}
    where = interaction_filter_sql(SearchFilters(sources=tuple(sources or ()) or None,
                                                 kinds=tuple(kinds or ()) or None, since=start, until=end), params)
    if cursor:
        at, iid = decode_cursor(cursor)
        where.append("(i.occurred_at, i.id) < (:c_at, :c_id)")
        params.update(c_at=at, c_id=iid)
    sql = TIMELINE_SQL.format(where="".join(f" AND {w}" for w in where), limit=" LIMIT :limit")
    with db.transaction(settings) as conn:
        entity = entity_head(conn, entity_id)
        rows = conn.execute(sa.text(sql), params).mappings().all()
    items = [timeline_item(r) for r in rows[:limit]]
    nxt = encode_cursor(rows[limit - 1]["occurred_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return {"entity": entity, "items": items, "next_cursor": nxt}


def entity_head(conn: sa.engine.Connection, entity_id: str) -> dict:
    row = conn.execute(sa.text(
        "SELECT 'person' AS type, id::text, display_name AS name, primary_email AS email, NULL AS domain "
        "FROM persons WHERE id = :id UNION ALL "
        "SELECT 'company', id::text, name, NULL, primary_domain FROM companies WHERE id = :id"),
        {"id": entity_id}).mappings().first()
    if row is None:
        raise NotFound(f"no person or company with id {entity_id}")
    return dict(row)


def get_entity(settings: Settings, entity_id: str) -> dict:
    entity_id = parse_uuid(entity_id)
    with db.transaction(settings) as conn:
        head = entity_head(conn, entity_id)
        identities = conn.execute(sa.text(
            "SELECT em.source, em.source_type, em.source_id, em.confidence, em.method, em.evidence, si.name, si.emails "
            "FROM entity_mappings em LEFT JOIN source_identities si USING (source, source_type, source_id) "
            "WHERE em.entity_id = :id ORDER BY em.source, em.source_type, em.source_id"), {"id": entity_id}).mappings().all()
        count = conn.execute(sa.text("SELECT count(*) FROM interaction_entities WHERE entity_id = :id"),
                             {"id": entity_id}).scalar()
        related = conn.execute(sa.text(
            "SELECT id::text, display_name AS name, 'person' AS type FROM persons WHERE company_id = :id "
            "UNION ALL SELECT c.id::text, c.name, 'company' FROM persons p JOIN companies c ON c.id = p.company_id "
            "WHERE p.id = :id ORDER BY 2 LIMIT 100"), {"id": entity_id}).mappings().all()
        from resolve_worker.manual import evidence

        why = evidence(conn, str(entity_id))
    return {**head, "identities": [dict(r) for r in identities], "interaction_count": count,
            "related": [dict(r) for r in related], "evidence": why}


def find_entities(settings: Settings, q: str, limit: int = 20) -> list[dict]:
    q = (q or "").strip()
    if len(q) < 2:
        raise BadRequest("q must have at least 2 characters")
    like = f"%{q.lower()}%"
    with db.transaction(settings) as conn:
        rows = conn.execute(sa.text(
            "SELECT 'person' AS type, id::text, display_name AS name, primary_email AS email, NULL AS domain "
            "FROM persons WHERE lower(display_name) LIKE :q OR lower(primary_email) LIKE :q "
            "UNION ALL SELECT 'company', id::text, name, NULL, primary_domain FROM companies "
            "WHERE lower(name) LIKE :q OR domains::text ILIKE :q ORDER BY 3 LIMIT :n"),
            {"q": like, "n": limit}).mappings().all()
    return [dict(r) for r in rows]


def search(settings: Settings, text: str, k: int = 5, sources: Optional[list[str]] = None, *,
           kinds: Optional[list[str]] = None, entity_id: Optional[str] = None,
           since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None) -> list[dict]:
    """Hybrid search (meaning + keywords, fused): passages with their interaction, citation keys
    and resolved persons/companies. See :func:`embed_worker.search.search`."""
    from embed_worker import search as search_mod

    require_text("query", text)
    try:
        hits = search_mod.search(settings, text, k=k, sources=sources, kinds=kinds, entity_id=entity_id,
                                 since=since, until=until)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    passages = SearchPassages(h.as_dict() for h in hits)
    passages.unavailable = hits.unavailable
    return passages


class SearchPassages(list):
    """The hits of :func:`search` as dicts; ``unavailable`` says why meaning was not searched."""

    unavailable: Optional[str] = None
