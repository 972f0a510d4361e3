"""Every API call in the audit log: actor (key name), action (method and route), target, outcome
(HTTP status), time. Reads are queued and written in batches; writes are flushed before the reply."""
from __future__ import annotations

import time

from flask import Flask, Response, current_app, g, request

from common import audit

AUDITED_PREFIXES = ("/api/v1/", "/dashboard")
_TARGET_ARGS = ("entity_id", "run_id", "rep_id", "q")


def _target(response: Response) -> str | None:
    for name in _TARGET_ARGS:
        value = (request.view_args or {}).get(name) or request.args.get(name)
        if value:
            return f"{name}={value}"
    if response.is_json and request.method == "POST":
        body = response.get_json(silent=True)
        if isinstance(body, dict) and body.get("run_id"):
            return f"run_id={body['run_id']}"
    return None


def _started() -> None:
    g.audit_started = time.perf_counter()


def _record(response: Response) -> Response:
    if not request.path.startswith(AUDITED_PREFIXES):
        return response
    rule = request.url_rule.rule if request.url_rule else request.path
    detail = {"ms": round((time.perf_counter() - g.get("audit_started", time.perf_counter())) * 1000, 2)}
    if request.method == "POST" and request.path.startswith("/api/v1/sync/"):
        body = request.get_json(silent=True)
        detail["request"] = body if isinstance(body, dict) else None
    current_app.extensions["payready_audit"].record(
        audit.row(g.get("actor", "anonymous"), f"{request.method} {rule}", _target(response),
                  str(response.status_code), detail),
        flush_now=request.method not in ("GET", "HEAD", "OPTIONS"))
    return response


def init_app(app: Flask) -> None:
    app.extensions["payready_audit"] = audit.AuditWriter(app.config["PAYREADY"])
    # first in, so the timer covers authentication too
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_record)
