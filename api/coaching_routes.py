"""GET /api/v1/coaching/report: coaching metrics per call and per rep from Gong turns."""
from __future__ import annotations


from flask import Blueprint, Flask, current_app, jsonify, request

from api import coaching_report, openapi, params
from api.errors import ApiError

bp = Blueprint("coaching", __name__, url_prefix="/api/v1")


@bp.get("/coaching/report")
def report():  # noqa: ANN201
    unknown = set(request.args) - {"rep_id", "from", "to"}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown parameters: {', '.join(sorted(unknown))}")
    start, end = params.time_param(request.args, "from"), params.time_param(request.args, "to")
    if start and end and start >= end:
        raise ApiError(400, "bad_request", "from must be before to")
    return jsonify(coaching_report.report(current_app.config["PAYREADY"], request.args.get("rep_id") or None,
                                          start, end))


_ERROR = {"description": "JSON error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}}}}}}}

#: OpenAPI 3 path items of this blueprint, for the API's openapi.json.
OPENAPI_PATHS = {
    "/api/v1/coaching/report": {"get": {
        "summary": "Coaching metrics per call, averaged per rep, with Gong's own stats beside ours",
        "description": "Talk ratio, longest monologue, longest customer story, interactivity, patience, question "
                       "rate, filler words and topics from Gong speaker turns; definitions in docs/coaching.md.",
        "security": [{"apiKey": []}],
        "parameters": [
            openapi.query("rep_id", "person id of the rep; all reps if omitted", fmt="uuid"),
            openapi.query("from", "calls at or after (ISO-8601)", fmt="date-time"),
            openapi.query("to", "calls before (ISO-8601)", fmt="date-time")],
        "responses": {
            "200": {"description": "the report", "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "rep_id": {"type": "string", "nullable": True}, "from": {"type": "string", "nullable": True},
                    "to": {"type": "string", "nullable": True}, "definitions": {"type": "string"},
                    "config": {"type": "object"}, "filler_baseline_per_100_words": {"type": "number", "nullable": True},
                    "reps": {"type": "array", "items": {"type": "object", "properties": {
                        "rep": {"type": "object"}, "averages": {"type": "object"},
                        "calls": {"type": "array", "items": {"type": "object"}}}}}}}}}},
            "400": _ERROR, "401": _ERROR, "404": _ERROR}}},
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    openapi.add_paths(app, OPENAPI_PATHS)
