"""Persons and companies: lookup by id, search by name, email or domain."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request

from api import openapi, params, services

bp = Blueprint("entities", __name__, url_prefix="/api/v1/entities")


@bp.get("/<entity_id>")
def entity(entity_id: str):  # noqa: ANN201
    return jsonify(services.get_entity(current_app.config["PAYREADY"], entity_id))


@bp.get("")
def entities():  # noqa: ANN201
    limit = params.int_param(request.args, "limit", 20, 1, 100)
    return jsonify({"items": services.find_entities(current_app.config["PAYREADY"], request.args.get("q", ""),
                                                    limit=limit)})


OPENAPI = {
    "/api/v1/entities/{entity_id}": {"get": {
        "summary": "A person or company: identities per source with confidence, related entities, counts",
        "parameters": [openapi.path_param("entity_id", "A person or company id (UUID)")],
        "responses": openapi.responses("The entity", "Entity", 400, 401, 403, 404),
    }},
    "/api/v1/entities": {"get": {
        "summary": "Find persons and companies by name, email or domain",
        "parameters": [openapi.query("q", "At least 2 characters", required=True),
                       openapi.query("limit", "At most this many (1-100, default 20)",
                                     schema={"type": "integer", "minimum": 1, "maximum": 100})],
        "responses": openapi.responses("Matching entities", "EntityList", 400, 401, 403),
    }},
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    openapi.add_paths(app, OPENAPI)
