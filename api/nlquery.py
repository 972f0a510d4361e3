"""Natural-language query: understand the question, retrieve with filters, answer with citations.

Shared by POST /api/v1/query and the MCP tool natural_language_query.

1. :mod:`api.query_parse` finds named persons/companies, sources, kinds and a time range.
2. :func:`api.services.search` retrieves chunks by meaning (sources passed through); time, kind and
   entity filters are applied to its hits, over-fetching when filters are present. When the
   filters leave fewer passages than asked, chunks of the matching interactions are added, ranked by
   full-text match then recency, so a named company's recent calls are found even when the nearest
   neighbours of the question lie elsewhere. Without a vector store (no pgvector) that full-text
   retrieval answers alone and the answer says so.
3. Without a language model the answer is extractive: the best passages, attributed to speakers.
   With OpenAI configured, the passages are pruned into a token budget (api.context_pruning), PII
   masked, and a chat model writes the answer citing [n].
4. Answers are cached in Redis per normalised question, day and data version (a new sync run or a
   redrive changes the version, so nothing stale is served).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
from typing import Any, Callable, Optional

import sqlalchemy as sa
from redis.exceptions import RedisError

from api import query_parse, services
from api.context_pruning import ContextItem, prune
from api.query_parse import KnownEntity, ParsedQuery
from common import db, pii
from common.settings import Settings
from embed_worker.stores import SearchFilters, interaction_filter_sql

log = logging.getLogger(__name__)
CACHE_TTL_SECONDS = 7 * 24 * 3600  # the warm tier's TTL (DESIGN §6)
MAX_QUESTION_CHARS = 2000
MAX_LIMIT = 50
ANSWER_MAX_TOKENS = 600
SYSTEM_PROMPT = (
    "You are Sophia, the assistant of Pay Ready's revenue team. Answer the question using only the "
    "numbered context passages from customer interactions. Cite every claim with the passage numbers in "
    "square brackets, e.g. [1][3]. If the passages do not answer the question, say so briefly. Masked "
    "values such as [EMAIL] are redacted on purpose; do not guess them.")


def normalise(question: str) -> str:
    return re.sub(r"\s+", " ", question.casefold()).strip(" ?!.")


def data_version(conn: sa.engine.Connection) -> str:
    """Changes whenever data may have changed: a run started, progressed or finished, or a redrive."""
    row = conn.execute(sa.text(
        "SELECT (SELECT max(greatest(created_at, heartbeat_at, finished_at)) FROM sync_runs), "
        "(SELECT count(*) FROM sync_runs), (SELECT max(redriven_at) FROM dead_letters)")).one()
    return hashlib.sha256(repr(tuple(row)).encode()).hexdigest()[:16]


def known_entities(conn: sa.engine.Connection) -> list[KnownEntity]:
    rows = conn.execute(sa.text(
        "SELECT id::text, 'company' AS type, name FROM companies WHERE name IS NOT NULL "
        "UNION ALL SELECT id::text, 'person', display_name FROM persons WHERE display_name IS NOT NULL")).all()
    return [KnownEntity(r.id, r.type, r.name) for r in rows]


_known_cache: dict[tuple[str, str], list[KnownEntity]] = {}


def _known_for(conn: sa.engine.Connection, settings: Settings, version: str) -> list[KnownEntity]:
    # The hot tier: the name list changes only with the data version.
    key = (settings.schema, version)
    if key not in _known_cache:
        _known_cache.clear()
        _known_cache[key] = known_entities(conn)
    return _known_cache[key]


def cache_key(settings: Settings, question: str, limit: int, version: str, mode: str, today: dt.date) -> str:
    digest = hashlib.sha256(f"{normalise(question)}|{limit}|{mode}|{today.isoformat()}".encode()).hexdigest()[:32]
    return f"{settings.key_prefix}nlq:{version}:{digest}"


# ---- retrieval ----

def _iso(value: Any) -> Optional[str]:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _as_time(value: Any) -> Optional[dt.datetime]:
    if isinstance(value, dt.datetime) or value is None:
        return value
    return dt.datetime.fromisoformat(value)


def _passes(hit: dict, parsed: ParsedQuery, allowed_ids: Optional[set[int]]) -> bool:
    at = _as_time(hit.get("occurred_at"))
    if parsed.start and (at is None or at < parsed.start):
        return False
    if parsed.end and (at is None or at >= parsed.end):
        return False
    if parsed.kinds and hit.get("kind") not in parsed.kinds:
        return False
    return allowed_ids is None or hit["interaction_id"] in allowed_ids


def _entity_interactions(conn: sa.engine.Connection, parsed: ParsedQuery) -> Optional[set[int]]:
    if not parsed.entities:
        return None
    ids = [e["id"] for e in parsed.entities]
    rows = conn.execute(sa.text("SELECT DISTINCT interaction_id FROM interaction_entities "
                                "WHERE entity_id = ANY(CAST(:ids AS uuid[]))"), {"ids": ids}).all()
    return {r[0] for r in rows}


def _filtered_chunks(conn: sa.engine.Connection, parsed: ParsedQuery, allowed_ids: Optional[set[int]],
                     exclude: set[str], n: int) -> list[dict]:
    """Chunks of interactions that pass the filters, by full-text match of the question then recency."""
    params: dict = {"exclude": list(exclude), "n": n}
    where = interaction_filter_sql(SearchFilters(sources=tuple(parsed.sources or ()) or None,
                                                 kinds=tuple(parsed.kinds or ()) or None,
                                                 since=parsed.start, until=parsed.end), params)
    where.append("NOT (c.id::text = ANY(:exclude))")
    if allowed_ids is not None:
        where.append("i.id = ANY(:ids)")
        params["ids"] = list(allowed_ids)
    words = [w for w in re.findall(r"[a-z0-9]+", parsed.text.lower()) if len(w) > 2]
    params["q"] = " | ".join(words) or "x"
    rows = conn.execute(sa.text(
        "SELECT c.id::text AS chunk_id, c.text, c.speakers, c.start_ms, i.id AS interaction_id, i.source, "
        "i.source_type, i.source_id, i.kind, i.title, i.occurred_at, i.url, "
        "ts_rank(to_tsvector('english', c.text), to_tsquery('english', :q)) AS rank FROM chunks c "
        f"JOIN interactions i ON i.id = c.interaction_id WHERE {' AND '.join(where)} "
        "ORDER BY rank DESC, i.occurred_at DESC NULLS LAST, c.ordinal LIMIT :n"), params).mappings().all()
    return [dict(r) | {"occurred_at": _iso(r["occurred_at"]), "score": None, "retrieval": "filters"} for r in rows]


def retrieve(settings: Settings, parsed: ParsedQuery, limit: int,
             search: Callable[..., list[dict]] = services.search) -> tuple[list[dict], Optional[str]]:
    """The passages for the question, and why semantic search was not used (None when it was)."""
    from embed_worker.stores import VectorStoreUnavailable

    filtered = bool(parsed.start or parsed.end or parsed.kinds or parsed.entities)
    k = max(limit * 10, 100) if filtered else limit * 2
    unavailable = None
    try:
        # the time window goes to the search itself, so its k hits are all inside the window
        hits = search(settings, parsed.text, k=k, sources=parsed.sources or None, since=parsed.start,
                      until=parsed.end)
        unavailable = getattr(hits, "unavailable", None)  # keyword side only: no vector store
    except VectorStoreUnavailable as exc:  # no pgvector: full-text under the same filters still answers
        hits, unavailable = [], str(exc)
    with db.transaction(settings) as conn:
        allowed = _entity_interactions(conn, parsed)
        kept = [h | {"retrieval": "semantic" if "vector" in h.get("matched_by", ["vector"]) else "keyword"}
                for h in hits if _passes(h, parsed, allowed)][:limit]
        if len(kept) < limit and (filtered or unavailable):
            kept += _filtered_chunks(conn, parsed, allowed, {h["chunk_id"] for h in kept}, limit - len(kept))
    return kept, unavailable


# ---- answers ----

def citation(n: int, hit: dict) -> dict:
    return {"n": n, "interaction_id": hit["interaction_id"], "source": hit["source"],
            "source_type": hit["source_type"], "source_id": hit["source_id"], "kind": hit["kind"],
            "title": hit.get("title"), "occurred_at": _iso(hit.get("occurred_at")), "url": hit.get("url"),
            "chunk_id": hit["chunk_id"], "start_ms": hit.get("start_ms"), "speakers": hit.get("speakers") or [],
            "score": hit.get("score"), "retrieval": hit.get("retrieval")}


def _excerpt(text: str, max_chars: int = 400) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0] + " …"


def extractive_answer(hits: list[dict]) -> str:
    """The best passages, each attributed to its speakers and cited [n]."""
    if not hits:
        return "No interactions match the question and its filters."
    lines = []
    for n, hit in enumerate(hits, 1):
        who = ", ".join(hit.get("speakers") or []) or (hit.get("title") or "unknown speaker")
        when = (_iso(hit.get("occurred_at")) or "")[:10]
        lines.append(f"[{n}] {who} ({hit['source']} {hit['kind']}, {when}): \"{_excerpt(hit['text'])}\"")
    return "\n".join(lines)


def _context_line(n: int, hit: dict, text: str) -> str:
    who = ", ".join(hit.get("speakers") or [])
    when = (_iso(hit.get("occurred_at")) or "")[:10]
    head = f"[{n}] {hit['source']} {hit['kind']} {when} {hit.get('title') or ''}".rstrip()
    passage = re.sub(r"\s+", " ", text).strip()
    # one line per passage; the tab separates the attribution from the passage itself
    return pii.mask(f"{head}{' — ' + who if who else ''}:\t{passage}")


def build_context(hits: list[dict], parsed: ParsedQuery, budget_tokens: int, now: dt.datetime) -> tuple[list[dict], list[ContextItem]]:
    """Prune the passages into the budget; essential = the best passage and the best per named entity."""
    essential: set[str] = set()
    if hits:
        best = max(hits, key=lambda h: h.get("score") or 0.0)
        essential.add(best["chunk_id"])
    items = [ContextItem(key=h["chunk_id"], text=pii.mask(h["text"]), occurred_at=_as_time(h.get("occurred_at")),
                         score=h.get("score") or 0.0, essential=h["chunk_id"] in essential) for h in hits]
    kept = prune(items, budget_tokens, now)
    by_id = {h["chunk_id"]: h for h in hits}
    return [by_id[i.key] for i in kept], kept


def llm_answer(settings: Settings, parsed: ParsedQuery, hits: list[dict], now: dt.datetime,
               client: Any = None) -> tuple[str, list[dict], dict]:
    """(answer, the hits cited in the context, context facts) from an OpenAI chat model."""
    chosen, kept = build_context(hits, parsed, settings.answer_context_tokens, now)
    lines = [_context_line(n, hit, item.text) for n, (hit, item) in enumerate(zip(chosen, kept), 1)]
    if client is None:
        from openai import OpenAI

        client = OpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url, timeout=60.0,
                        max_retries=2)
    response = client.chat.completions.create(
        model=settings.openai_chat_model, temperature=0, max_tokens=ANSWER_MAX_TOKENS,
        messages=[{"role": "system", "content": SYSTEM_PROMPT},
                  {"role": "user", "content": "Context:\n" + "\n".join(lines) +
                   f"\n\nQuestion: {pii.mask(parsed.question)}"}])
    text = (response.choices[0].message.content or "").strip()
    facts = {"budget_tokens": settings.answer_context_tokens, "tokens": sum(i.tokens for i in kept),
             "tiers": {t: sum(1 for i in kept if i.tier == t) for t in ("essential", "recent", "relevant", "compressed")},
             "model": settings.openai_chat_model}
    return text, chosen, facts


def _redis(settings: Settings):  # noqa: ANN202
    from common.ratelimit import client_for

    return client_for(settings)


def answer(settings: Settings, question: str, limit: int = 10, *, now: Optional[dt.datetime] = None,
           use_cache: bool = True) -> dict:
    """The answer to ``question`` with citations; see the module docstring."""
    if not isinstance(question, str) or not question.strip():
        raise services.BadRequest("question must be a non-empty string")
    if len(question) > MAX_QUESTION_CHARS:
        raise services.BadRequest(f"question must be at most {MAX_QUESTION_CHARS} characters")
    services.require_text("question", question)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise services.BadRequest(f"limit must be an integer between 1 and {MAX_LIMIT}")
    now = now or dt.datetime.now(dt.timezone.utc)
    mode = "llm" if settings.openai_api_key else "extractive"
    with db.transaction(settings) as conn:
        version = data_version(conn)
        known = _known_for(conn, settings, version)
    key = cache_key(settings, question, limit, version, mode, now.date())
    redis = _redis(settings) if use_cache else None
    if redis is not None:
        try:
            cached = redis.get(key)
        except RedisError as exc:  # the warm tier is an optimisation: answer without it
            log.warning("query cache unavailable (%s); answering uncached", exc)
            cached, redis = None, None
        if cached:
            return json.loads(cached) | {"cached": True}
    started = time.perf_counter()
    parsed = query_parse.parse(question, known, now)
    hits, unavailable = retrieve(settings, parsed, limit)
    body: dict = {"question": question, "understood": parsed.as_dict(), "mode": mode}
    if unavailable:
        body["semantic_search"] = f"unavailable, full-text used instead: {unavailable}"
    if mode == "llm" and hits:
        try:
            text, cited, facts = llm_answer(settings, parsed, hits, now)
            body |= {"answer": text, "citations": [citation(n, h) for n, h in enumerate(cited, 1)], "context": facts}
        except Exception as exc:  # noqa: BLE001 - any model failure falls back to the extractive answer
            log.warning("language model failed (%s); answering extractively", type(exc).__name__)
            body |= {"mode": "extractive", "llm_error": type(exc).__name__}
    if "answer" not in body:
        body |= {"answer": extractive_answer(hits), "citations": [citation(n, h) for n, h in enumerate(hits, 1)]}
    body |= {"data_version": version, "took_ms": round((time.perf_counter() - started) * 1000, 1)}
    if redis is not None and "llm_error" not in body:
        try:
            redis.set(key, json.dumps(body, default=str), ex=CACHE_TTL_SECONDS)
        except RedisError as exc:
            log.warning("query cache unavailable (%s); answer not cached", exc)
    return body | {"cached": False}
