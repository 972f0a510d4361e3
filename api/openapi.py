"""The OpenAPI 3 document at /api/v1/openapi.json, assembled from the paths each blueprint declares.

Every blueprint module keeps its routes' description as data beside the routes (``OPENAPI``) and
registers it with :func:`add_paths` in its ``init_app``; a test checks the document's paths and
methods equal the app's routes, both ways.
"""
from __future__ import annotations

import re
from typing import Optional

from flask import Blueprint, Flask, current_app, jsonify

bp = Blueprint("openapi", __name__)

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
_ERRORS = {400: "Invalid parameters", 401: "No or unknown API key", 403: "The key belongs to another domain",
           404: "Not found", 409: "Conflict", 503: "Not ready"}
SCHEMAS = {
    "Error": _ERROR,
    "TimelinePage": {"type": "object", "required": ["entity", "items", "next_cursor"], "properties": {
        "entity": {"type": "object"},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "source": {"type": "string"}, "source_type": {"type": "string"},
            "source_id": {"type": "string"}, "kind": {"type": "string"},
            "occurred_at": {"type": "string", "format": "date-time"}, "title": {"type": "string", "nullable": True},
            "url": {"type": "string", "nullable": True}, "snippet": {"type": "string", "nullable": True}}}},
        "next_cursor": {"type": "string", "nullable": True}}},
    "Entity": {"type": "object", "properties": {
        "type": {"type": "string", "enum": ["person", "company"]}, "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string", "nullable": True}, "identities": {"type": "array", "items": {"type": "object"}},
        "related": {"type": "array", "items": {"type": "object"}}, "interaction_count": {"type": "integer"}}},
    "EntityList": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}},
    "SyncTrigger": {"type": "object", "properties": {
        "sources": {"type": "array", "minItems": 1,
                    "items": {"type": "string", "enum": ["gong", "slack", "hubspot", "salesforce"]}},
        "full_refresh": {"type": "boolean"}}, "additionalProperties": False},
    "SyncStarted": {"type": "object", "required": ["run_id", "created", "status_url"], "properties": {
        "run_id": {"type": "string", "format": "uuid"}, "created": {"type": "boolean"},
        "status_url": {"type": "string"}}},
    "SyncRun": {"type": "object", "properties": {
        "run_id": {"type": "string"}, "status": {"type": "string"}, "phases": {"type": "object"},
        "sources": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "status": {"type": "string"}, "in": {"type": "integer"}, "processed": {"type": "integer"},
            "dead_lettered": {"type": "integer"}, "error": {"type": "string", "nullable": True}}}},
        "error": {"type": "string", "nullable": True}}},
    "Dashboard": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "rows": {"type": "array", "items": {"type": "object"}}, "computed_at": {"type": "string"}}}},
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
}


def query(name: str, description: str, *, required: bool = False, fmt: Optional[str] = None,
          schema: Optional[dict] = None) -> dict:
    schema = schema or ({"type": "string", "format": fmt} if fmt else {"type": "string"})
    param = {"name": name, "in": "query", "required": required, "description": description, "schema": schema}
    if not required:  # ``?to=`` is taken as no ``to`` (a form's empty field), never as an error
        param["allowEmptyValue"] = True
    return param


def path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def responses(description: str, schema: Optional[str], *errors: int, status: int = 200,
              media: str = "application/json") -> dict:
    ok: dict = {"description": description}
    if schema:
        ok["content"] = {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    elif media != "application/json":
        ok["content"] = {media: {"schema": {"type": "string"}}}
    out = {str(status): ok}
    for code in errors:
        out[str(code)] = {"description": _ERRORS[code],
                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return out


def add_paths(app: Flask, paths: dict) -> None:
    registered = app.extensions.setdefault("payready_openapi", {})
    for path, methods in paths.items():
        registered.setdefault(path, {}).update(methods)


def flask_rule_to_path(rule: str) -> str:
    """``/api/v1/entities/<entity_id>`` → ``/api/v1/entities/{entity_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def document(app: Flask) -> dict:
    paths = app.extensions.get("payready_openapi", {})
    public = ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/dashboard")
    for path, methods in paths.items():
        for op in methods.values():
            if path not in public:
                op.setdefault("security", [{"apiKey": []}])
    return {
        "openapi": "3.0.3",
        "info": {"title": "Pay Ready ETL API", "version": "1",
                 "description": "Timelines, entities, sync runs and analytics of one domain. Every /api/v1 call "
                                "needs `Authorization: Bearer <api key>`; keys belong to one domain. Errors are "
                                "`{\"error\": {\"code\", \"message\"}}`."},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": dict(sorted(paths.items())),
    }


@bp.get("/api/v1/openapi.json")
def openapi_json():  # noqa: ANN201
    return jsonify(document(current_app))


OPENAPI = {
    "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                     "responses": {"200": {"description": "OpenAPI 3 document"}}}},
    # api/health.py's routes (the ops helper owns the module; their description lives here)
    "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": responses("Alive", "Health")}},
    "/readyz": {"get": {"summary": "Readiness: database, Redis, broker", "security": [],
                        "responses": responses("Ready", "Health", 503)}},
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_paths(app, OPENAPI)
