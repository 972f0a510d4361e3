"""Sync trigger and run status."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request, url_for

from api import openapi, params
from api.errors import ApiError
from common import runs

bp = Blueprint("sync", __name__, url_prefix="/api/v1/sync")
SOURCES = params.SOURCES


@bp.post("/trigger")
def trigger():  # noqa: ANN201
    settings = current_app.config["PAYREADY"]
    # no body means every configured source; a body that is not a JSON object (or names a field
    # this route does not know, such as a misspelt "sources") would otherwise start that full sync
    body = request.get_json(force=True, silent=True) if request.get_data(cache=True).strip() else {}
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", 'body must be a JSON object: {"sources": [...], "full_refresh": false}')
    unknown = set(body) - {"sources", "full_refresh"}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    sources = body.get("sources", list(settings.sources))  # {}, [] or null once meant every source too
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s in SOURCES for s in sources):
        raise ApiError(400, "bad_request", f"sources must be a non-empty list drawn from {', '.join(SOURCES)}")
    full = body.get("full_refresh", False)
    if not isinstance(full, bool):
        raise ApiError(400, "bad_request", "full_refresh must be true or false")
    started = runs.start_run(settings, sorted(set(sources)), trigger="api", full_refresh=full)
    if started.created:
        runs.dispatch(settings, started.run_id, sorted(set(sources)))
    status_url = url_for("sync.run_status", run_id=started.run_id)
    return jsonify({"run_id": started.run_id, "created": started.created, "status_url": status_url}), \
        202, {"Location": status_url}


@bp.get("/runs/<run_id>")
def run_status(run_id: str):  # noqa: ANN201
    run = runs.get_run(current_app.config["PAYREADY"], run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no run {run_id}")
    return jsonify(run)


OPENAPI = {
    "/api/v1/sync/trigger": {"post": {
        "summary": "Start a run; an active run for any of these sources is returned instead (created=false)",
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/SyncTrigger"}}}},
        "responses": openapi.responses("The run and its status URL (also in Location)", "SyncStarted",
                                       400, 401, 403, status=202),
    }},
    "/api/v1/sync/runs/{run_id}": {"get": {
        "summary": "A run: status, phases, counts per source (in, processed, dead-lettered), errors",
        "parameters": [openapi.path_param("run_id", "The run id (UUID)")],
        "responses": openapi.responses("The run", "SyncRun", 401, 403, 404),
    }},
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    openapi.add_paths(app, OPENAPI)
