"""The state of the stack for `payready status` and the readiness check: each part named."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from common import db
from common.settings import Settings, redact_url


def collect(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {
        "domain": settings.domain,
        "urls": {"database": redact_url(settings.database_url), "redis": redact_url(settings.redis_url),
                 "broker": redact_url(settings.broker_url)},
        "embedded": settings.embedded,
    }
    report["database"] = _database(settings)
    report["redis"] = _redis(settings)
    report["broker"] = _broker(settings)
    return report


def _database(settings: Settings) -> dict:
    if not settings.database_url:
        return {"ok": False, "error": "no database URL and no embedded stack running"}
    try:
        with db.transaction(settings) as conn:
            revision = db.current_revision(conn)
            vectors = db.vector_ready(conn) if revision else False
            last = conn.execute(sa.text("SELECT source, last_success_at FROM data_sources")).all() if revision else []
        return {"ok": revision is not None, "revision": revision, "pgvector": vectors,
                "last_success": {r.source: r.last_success_at for r in last},
                **({} if revision else {"error": "schema not migrated: run `payready migrate`"})}
    except Exception as exc:  # report, don't crash: this is a health view
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}


def _redis(settings: Settings) -> dict:
    if not settings.redis_url:
        return {"ok": False, "error": "no Redis URL and no embedded stack running"}
    try:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        client.ping()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _broker(settings: Settings) -> dict:
    if not settings.broker_url:
        return {"ok": False, "error": "no broker URL"}
    try:
        from kombu import Connection

        with Connection(settings.broker_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
            depths = {}
            for phase in ("ingest", "resolve", "embed"):
                name = settings.queue(phase)
                try:
                    depths[name] = conn.default_channel.queue_declare(name, passive=True).message_count
                except Exception:
                    depths[name] = None  # not declared yet: no worker has started on it
        return {"ok": True, "queue_depths": depths}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
