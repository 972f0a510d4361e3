"""The state of the stack for `payready status` and the readiness check: each part named."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from common import db, embedded
from common.settings import Settings, redact_url


def collect(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {
        "domain": settings.domain,
        "urls": {"database": redact_url(settings.database_url), "redis": redact_url(settings.redis_url),
                 "broker": redact_url(settings.broker_url)},
        "embedded": embedded.in_use(settings),
    }
    report["database"] = _database(settings)
    report["redis"] = _redis(settings)
    report["broker"] = _broker(settings)
    report["rate_limits"] = _rate_limits(settings) if report["redis"].get("ok") else {}
    return report


def _database(settings: Settings) -> dict:
    if not settings.database_url:
        return {"ok": False, "error": "no database URL and no embedded stack running"}
    try:
        with db.transaction(settings) as conn:
            revision = db.current_revision(conn)
            vectors = db.vector_ready(conn) if revision else False
            last = conn.execute(sa.text("SELECT source, last_success_at FROM data_sources")).all() if revision else []
            dead = conn.execute(sa.text(
                "SELECT source, count(*) FROM dead_letters WHERE redriven_at IS NULL GROUP BY source")).all() \
                if revision else []
            active = conn.execute(sa.text(
                "SELECT count(*) FROM sync_runs WHERE status IN ('pending','running')")).scalar() if revision else 0
        return {"ok": revision is not None, "revision": revision, "pgvector": vectors,
                "last_success": {r.source: r.last_success_at for r in last},
                "dead_letters": {r[0]: r[1] for r in dead}, "runs_active": active,
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

        # the Celery app's key prefix, or kombu looks for Redis lists no message is ever put on
        with Connection(settings.broker_url, connect_timeout=2,
                        transport_options={"global_keyprefix": settings.celery_key_prefix}) as conn:
            conn.ensure_connection(max_retries=1)
            depths = {settings.queue(p): _queue_depth(conn, settings.queue(p)) for p in ("ingest", "resolve", "embed")}
        return {"ok": True, "queue_depths": depths}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _queue_depth(conn: Any, name: str) -> int | None:
    """Messages waiting on ``name``: RabbitMQ's count, or on Redis the summed lengths of the queue's
    lists (kombu keeps one per priority step); None when RabbitMQ has no such queue yet."""
    channel = conn.default_channel
    if conn.transport.driver_type == "redis":
        # Redis has no queue to declare (a declare only counts its lists), and a passive one always
        # fails under a global_keyprefix: kombu's EXISTS leaves the prefix off
        return channel.queue_declare(name).message_count
    try:
        return channel.queue_declare(name, passive=True).message_count
    except conn.channel_errors:
        return None  # not declared yet: no worker or sender has used it


def _rate_limits(settings: Settings) -> dict:
    """Per shared limit: seconds until the next grant, and whether its circuit breaker is open."""
    try:
        from common import ratelimit

        limiter = ratelimit.for_settings(settings)
        circuits = ratelimit.circuits_for(settings)
        return {name: {"wait_seconds": round(limiter.wait_time(name), 3), "circuit_open": circuits.is_open(name),
                       "circuit_open_for": round(circuits.open_for(name), 3)} for name in limiter.limits}
    except Exception as exc:
        return {"_error": {"error": f"{type(exc).__name__}: {exc}", "circuit_open": False}}


def readiness(settings: Settings, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """The readiness verdict: every failed check named, with why; freshness only warns.

    Checks: database (migrated), Redis, broker, each queue's depth against
    PAYREADY_QUEUE_DEPTH_LIMIT, every open circuit breaker. A source whose last successful sync is
    older than PAYREADY_FRESHNESS_LIMIT_SECONDS is named under ``warnings`` (stale data is an
    alert, not a reason to stop serving what is there).
    """
    import datetime as dt

    report = report or collect(settings)
    failures: dict[str, str] = {}
    for part in ("database", "redis", "broker"):
        if not report[part].get("ok"):
            failures[part] = report[part].get("error") or "not ok"
    for queue, depth in (report["broker"].get("queue_depths") or {}).items():
        if depth is not None and depth > settings.queue_depth_limit:
            failures[f"queue:{queue}"] = f"{depth} messages waiting > limit {settings.queue_depth_limit}"
    for name, state in (report.get("rate_limits") or {}).items():
        if state.get("error"):
            failures["rate_limits"] = state["error"]
        elif state.get("circuit_open"):
            failures[f"circuit:{name}"] = f"circuit breaker open for {state['circuit_open_for']} s more"
    warnings: dict[str, str] = {}
    now = dt.datetime.now(dt.timezone.utc)
    last = report["database"].get("last_success") or {}
    for source in settings.sources:
        at = last.get(source)
        if at is None:
            warnings[f"freshness:{source}"] = "never synced successfully"
        elif (now - at).total_seconds() > settings.freshness_limit_seconds:
            warnings[f"freshness:{source}"] = (f"last success {int((now - at).total_seconds())} s ago > "
                                               f"{settings.freshness_limit_seconds} s")
    return {
        "status": "ready" if not failures else "not_ready",
        "failures": failures,
        "warnings": warnings,
        "checks": {
            "database": {k: v for k, v in report["database"].items() if k != "last_success"},
            "redis": report["redis"],
            "broker": report["broker"],
            "rate_limits": report.get("rate_limits") or {},
            "last_success": {src: (last[src].isoformat() if last.get(src) else None) for src in settings.sources},
        },
    }
