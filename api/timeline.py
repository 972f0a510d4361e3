"""GET /api/v1/interactions/timeline: a person's or company's interactions through the memory tiers."""
from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request

from api import openapi, params
from common.timeline_cache import TimelineTiers

bp = Blueprint("timeline", __name__, url_prefix="/api/v1")


@bp.get("/interactions/timeline")
def timeline():  # noqa: ANN201
    # a plain dict: MultiDict.get builds a KeyError exception for every absent parameter (five here)
    args = request.args.to_dict()
    entity_id = params.required(args, "entity_id")
    start, end = params.time_param(args, "from"), params.time_param(args, "to")
    params.time_window(start, end)
    # the tiers hand back the finished JSON: a hot hit encodes nothing
    body, tier = current_app.extensions["payready_timeline"].page_body(
        entity_id, start=start, end=end, sources=params.choices_param(args, "source", params.SOURCES),
        kinds=params.choices_param(args, "type", params.KINDS),
        limit=params.int_param(args, "limit", 50, 1, 500), cursor=args.get("cursor") or None)
    return Response(body, mimetype="application/json", headers={"X-Cache": tier})


_RESPONSES = openapi.responses("A page of the timeline", "TimelinePage", 400, 401, 403, 404)
_RESPONSES["200"]["headers"] = {"X-Cache": {"description": "The memory tier that answered",
                                            "schema": {"type": "string", "enum": ["hot", "warm", "cold"]}}}

OPENAPI = {
    "/api/v1/interactions/timeline": {"get": {
        "summary": "Interactions of a person or company (a company includes its people), newest first",
        "parameters": [
            openapi.query("entity_id", "A person or company id (UUID)", required=True, fmt="uuid"),
            openapi.query("from", "Only interactions at or after this ISO-8601 time", fmt="date-time"),
            openapi.query("to", "Only interactions before this ISO-8601 time", fmt="date-time"),
            openapi.query("source", "Comma list of " + ", ".join(params.SOURCES)),
            openapi.query("type", "Comma list of kinds: " + ", ".join(params.KINDS)),
            openapi.query("limit", "Page size, 1-500 (default 50)", schema={"type": "integer", "minimum": 1,
                                                                           "maximum": 500, "default": 50}),
            openapi.query("cursor", "next_cursor of the previous page"),
        ],
        "responses": _RESPONSES,
    }},
}


def init_app(app: Flask) -> None:
    app.extensions["payready_timeline"] = TimelineTiers(app.config["PAYREADY"])
    app.register_blueprint(bp)
    openapi.add_paths(app, OPENAPI)
