"""Liveness and readiness."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify

from common import status

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():  # noqa: ANN201
    report = status.collect(current_app.config["PAYREADY"])
    failures = [name for name in ("database", "redis", "broker") if not report[name].get("ok")]
    body = {"status": "ready" if not failures else "not_ready", "failures": failures,
            **{k: report[k] for k in ("database", "redis", "broker")}}
    return jsonify(body), 200 if not failures else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
