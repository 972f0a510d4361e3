"""Every API call in the audit log: actor (key name), action (method and route), target, outcome
(HTTP status), time. Reads are queued and written in batches; writes are flushed before the reply."""
from __future__ import annotations

import time

from flask import Flask, Request, Response, current_app, g, request

from common import audit

AUDITED_PREFIXES = ("/api/v1/", "/dashboard")
_TARGET_ARGS = ("entity_id", "run_id", "rep_id", "q")


def _target(req: Request, response: Response) -> str | None:
    try:
        view_args, args = req.view_args or {}, req.args
    except UnicodeDecodeError:  # a query string that is not UTF-8: answered 400, no target to name
        return None
    for name in _TARGET_ARGS:
        value = view_args.get(name) or args.get(name)
        if value:
            return f"{name}={value}"
    if req.method == "POST" and response.is_json:
        body = response.get_json(silent=True)
        if isinstance(body, dict) and body.get("run_id"):
            return f"run_id={body['run_id']}"
    return None


def _started() -> None:
    g.audit_started = time.perf_counter()


def _record(response: Response) -> Response:
    # the request object once: every use of Flask's ``request``/``g`` proxies costs a context lookup
    req = request._get_current_object()
    if not req.path.startswith(AUDITED_PREFIXES):
        return response
    context = g._get_current_object()
    rule = req.url_rule.rule if req.url_rule else req.path
    detail = {"ms": round((time.perf_counter() - getattr(context, "audit_started", time.perf_counter())) * 1000, 2)}
    if req.method == "POST" and req.path.startswith("/api/v1/sync/"):
        body = req.get_json(silent=True)
        detail["request"] = body if isinstance(body, dict) else None
    current_app.extensions["payready_audit"].record(
        audit.row(getattr(context, "actor", "anonymous"), f"{req.method} {rule}", _target(req, response),
                  str(response.status_code), detail),
        flush_now=req.method not in ("GET", "HEAD", "OPTIONS"))
    return response


def record_read(app: Flask, actor: str, action: str, target: str | None, started: float) -> None:
    """The audit row of a successful read answered outside Flask's hooks (the timeline's fast path):
    the same row :func:`_record` writes for it."""
    app.extensions["payready_audit"].record(audit.row(
        actor, action, target, "200", {"ms": round((time.perf_counter() - started) * 1000, 2)}), flush_now=False)


def init_app(app: Flask) -> None:
    app.extensions["payready_audit"] = audit.AuditWriter(app.config["PAYREADY"])
    # first in, so the timer covers authentication too
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_record)
