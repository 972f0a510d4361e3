"""GET /metrics: Prometheus text for the whole API group (every gunicorn worker) plus the stack's
state read at scrape time (queue depths, dead letters waiting, freshness, circuits).

Unauthenticated like /healthz: scrape it from inside the network; it holds counts, no data.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api import openapi
from common import metrics

bp = Blueprint("metrics", __name__)
log = logging.getLogger("payready.api.metrics")


@bp.get("/metrics")
def scrape():  # noqa: ANN201
    _export_stored_gauges(current_app.config["PAYREADY"])
    body = generate_latest(metrics.registry()) + generate_latest(current_app.extensions["payready_stack_metrics"])
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _export_stored_gauges(settings) -> None:  # noqa: ANN001
    """Gauges whose truth lives in Postgres (the latest labelled resolution evaluation): set at scrape
    time, so the API exports them even though the evaluation ran in another process."""
    from resolve_worker import accuracy

    try:
        accuracy.export(settings)
    except Exception:  # noqa: BLE001 - a scrape must answer; the database's state is in `up`
        log.warning("entity resolution accuracy not exported", exc_info=True)


@bp.after_app_request
def _count(response):  # noqa: ANN001, ANN202
    count(request.url_rule.rule if request.url_rule is not None else "unmatched", response.status_code)
    return response


def count(route: str, status: int) -> None:
    """One answered request (also called by the timeline's fast path, which bypasses the hook)."""
    metrics.HTTP_REQUESTS.labels(route=route, status=str(status)).inc()
    metrics.note_memory()


OPENAPI = {"/metrics": {"get": {
    "summary": "Prometheus metrics of the API group and the stack (queue depths, dead letters, freshness)",
    "security": [], "responses": openapi.responses("Prometheus text exposition", None, media="text/plain")}}}


def init_app(app: Flask) -> None:
    openapi.add_paths(app, OPENAPI)
    stack = CollectorRegistry(auto_describe=False)
    stack.register(metrics.StackCollector(app.config["PAYREADY"]))
    app.extensions["payready_stack_metrics"] = stack
    app.register_blueprint(bp)
