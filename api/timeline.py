"""Timeline and entity routes."""
from __future__ import annotations

import datetime as dt
from typing import Optional

from flask import Blueprint, Flask, current_app, jsonify, request

from api import services
from api.errors import ApiError

bp = Blueprint("timeline", __name__, url_prefix="/api/v1")
KINDS = ("call", "thread", "note", "email", "meeting", "task", "event")
SOURCES = ("gong", "slack", "hubspot", "salesforce")


def _time(name: str) -> Optional[dt.datetime]:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an ISO-8601 date or time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _choices(name: str, allowed: tuple[str, ...]) -> Optional[list[str]]:
    raw = request.args.get(name)
    if not raw:
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ApiError(400, "bad_request", f"{name} must be drawn from {', '.join(allowed)}; got {', '.join(bad)}")
    return values


@bp.get("/interactions/timeline")
def timeline():  # noqa: ANN201
    entity_id = request.args.get("entity_id")
    if not entity_id:
        raise ApiError(400, "bad_request", "entity_id is required")
    try:
        limit = int(request.args.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "bad_request", "limit must be an integer") from None
    if not 1 <= limit <= 500:
        raise ApiError(400, "bad_request", "limit must be between 1 and 500")
    return jsonify(services.timeline(
        current_app.config["PAYREADY"], entity_id, start=_time("from"), end=_time("to"),
        sources=_choices("source", SOURCES), kinds=_choices("type", KINDS), limit=limit,
        cursor=request.args.get("cursor")))


@bp.get("/entities/<entity_id>")
def entity(entity_id: str):  # noqa: ANN201
    return jsonify(services.get_entity(current_app.config["PAYREADY"], entity_id))


@bp.get("/entities")
def entities():  # noqa: ANN201
    return jsonify({"items": services.find_entities(current_app.config["PAYREADY"], request.args.get("q", ""))})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
