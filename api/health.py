"""Liveness (/healthz: the process answers) and readiness (/readyz: every dependency, named)."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify

from common import status

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():  # noqa: ANN201
    """200 when ready; 503 naming each failed check (database, redis, broker, queue:<name>,
    circuit:<name>) with its reason. Sources not synced recently are listed under warnings."""
    verdict = status.readiness(current_app.config["PAYREADY"])
    return jsonify(verdict), 200 if verdict["status"] == "ready" else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
