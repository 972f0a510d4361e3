"""Phase 6: pre-computed dashboard metrics in ``analytics_cache`` (one row per metric)."""
from __future__ import annotations

import datetime as dt
import decimal
import json

import sqlalchemy as sa

from common import db
from common.settings import Settings

# metric key → SQL returning rows; each result is stored as {"rows": [...]}.
METRICS: dict[str, str] = {
    "interactions_per_source_per_day": (
        "SELECT source, to_char(date_trunc('day', occurred_at), 'YYYY-MM-DD') AS day, count(*) AS n "
        "FROM interactions WHERE occurred_at IS NOT NULL AND NOT deleted GROUP BY 1, 2 ORDER BY 2, 1"),
    "totals": (
        "SELECT (SELECT count(*) FROM interactions) AS interactions, "
        "(SELECT count(*) FROM persons) AS persons, (SELECT count(*) FROM companies) AS companies, "
        "(SELECT count(*) FROM chunks) AS chunks, "
        "(SELECT count(*) FROM chunks WHERE embedded_hash = content_hash) AS chunks_embedded, "
        "(SELECT count(*) FROM dead_letters WHERE redriven_at IS NULL) AS dead_letters"),
    "most_active_companies": (
        "SELECT c.id::text AS company_id, c.name, count(*) AS interactions, max(ie.occurred_at) AS last_at "
        "FROM interaction_entities ie JOIN companies c ON c.id = ie.entity_id "
        "GROUP BY c.id, c.name ORDER BY count(*) DESC, c.name LIMIT 20"),
    "freshness_per_source": (
        "SELECT source, last_success_at, EXTRACT(EPOCH FROM now() - last_success_at)::bigint AS age_s "
        "FROM data_sources ORDER BY source"),
    "resolution": (
        "SELECT entity_type, method, count(*) AS identities, round(avg(confidence)::numeric, 4) AS avg_confidence "
        "FROM entity_mappings GROUP BY 1, 2 ORDER BY 1, 2"),
    "resolution_summary": (
        "SELECT (SELECT count(*) FROM source_identities WHERE entity_type IN ('person','company')) AS identities, "
        "(SELECT count(*) FROM entity_mappings) AS mapped, "
        "(SELECT count(*) FROM entity_mappings WHERE confidence < 0.8) AS low_confidence, "
        "(SELECT count(*) FROM persons) AS persons, (SELECT count(*) FROM companies) AS companies, "
        "(SELECT count(*) FROM interactions i WHERE NOT i.deleted AND NOT EXISTS "
        "(SELECT 1 FROM interaction_entities ie WHERE ie.interaction_id = i.id)) AS unlinked_interactions"),
    "dead_letters_per_source": (
        "SELECT source, stream, count(*) AS n FROM dead_letters WHERE redriven_at IS NULL "
        "GROUP BY 1, 2 ORDER BY 1, 2"),
    "run_history": (
        "SELECT r.id::text AS run_id, r.status, r.trigger, r.created_at, r.finished_at, "
        "round(EXTRACT(EPOCH FROM r.finished_at - coalesce(r.started_at, r.created_at))::numeric, 1) AS seconds, "
        "coalesce(sum(s.records_in), 0) AS records_in, coalesce(sum(s.processed), 0) AS processed, "
        "coalesce(sum(s.dead_lettered), 0) AS dead_lettered "
        "FROM sync_runs r LEFT JOIN sync_run_sources s ON s.run_id = r.id "
        "GROUP BY r.id ORDER BY r.created_at DESC LIMIT 20"),
}


def refresh(settings: Settings) -> dict[str, int]:
    """Recompute every metric in one transaction; returns rows per metric."""
    sizes = {}
    with db.transaction(settings) as conn:
        for key, sql in METRICS.items():
            rows = [dict(r) for r in conn.execute(sa.text(sql)).mappings()]
            value = json.loads(json.dumps({"rows": rows}, default=_jsonable))
            conn.execute(sa.text(
                "INSERT INTO analytics_cache (key, value, computed_at) VALUES (:k, CAST(:v AS jsonb), now()) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, computed_at = now()"),
                {"k": key, "v": json.dumps(value)})
            sizes[key] = len(rows)
    return sizes


def _jsonable(value: object) -> object:
    """Numbers stay numbers (sums and rounds come back from Postgres as Decimal)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def read(settings: Settings) -> dict:
    with db.transaction(settings) as conn:
        rows = conn.execute(sa.text("SELECT key, value, computed_at FROM analytics_cache")).all()
    return {r.key: {**r.value, "computed_at": r.computed_at.isoformat()} for r in rows}
