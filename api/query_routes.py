"""POST /api/v1/query: natural-language question, answer with citations (api.nlquery)."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request

from api import nlquery, openapi
from api.errors import ApiError
from embed_worker.stores import VectorStoreUnavailable

bp = Blueprint("query", __name__, url_prefix="/api/v1")


@bp.post("/query")
def query():  # noqa: ANN201
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", 'send a JSON object: {"question": "...", "limit": 10}')
    unknown = set(body) - {"question", "limit"}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    try:
        return jsonify(nlquery.answer(current_app.config["PAYREADY"], body.get("question"), body.get("limit", 10)))
    except VectorStoreUnavailable as exc:
        raise ApiError(503, "search_unavailable", str(exc)) from None


_CITATION = {"type": "object", "properties": {
    "n": {"type": "integer"}, "interaction_id": {"type": "integer"}, "source": {"type": "string"},
    "source_type": {"type": "string"}, "source_id": {"type": "string"}, "kind": {"type": "string"},
    "title": {"type": "string", "nullable": True}, "occurred_at": {"type": "string", "format": "date-time"},
    "url": {"type": "string", "nullable": True}, "chunk_id": {"type": "string", "format": "uuid"},
    "start_ms": {"type": "integer", "nullable": True}, "speakers": {"type": "array", "items": {"type": "string"}},
    "score": {"type": "number", "nullable": True}}}
_ERROR = {"description": "JSON error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}}}}}}}

#: OpenAPI 3 path items of this blueprint, for the API's openapi.json.
OPENAPI_PATHS = {
    "/api/v1/query": {"post": {
        "summary": "Natural-language question answered with cited interactions",
        "description": "Entity names, sources (gong, slack, hubspot, salesforce), kinds (calls, emails, ...) and "
                       "time ranges (last month, since March, in Q3 2026, yesterday, ...) in the question become "
                       "filters. Extractive answer without a language model; with OPENAI_API_KEY a chat model "
                       "writes it from a pruned, PII-masked context. Cached per question and data version.",
        "security": [{"apiKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["question"], "additionalProperties": False, "properties": {
                "question": {"type": "string", "minLength": 1, "maxLength": nlquery.MAX_QUESTION_CHARS},
                "limit": {"type": "integer", "minimum": 1, "maximum": nlquery.MAX_LIMIT, "default": 10}}}}}},
        "responses": {
            "200": {"description": "answer with citations", "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "question": {"type": "string"}, "answer": {"type": "string"},
                    "mode": {"type": "string", "enum": ["extractive", "llm"]},
                    "understood": {"type": "object", "description": "filters read from the question"},
                    "citations": {"type": "array", "items": _CITATION},
                    "context": {"type": "object", "description": "llm mode: budget, tokens used, items per tier"},
                    "data_version": {"type": "string"}, "cached": {"type": "boolean"},
                    "took_ms": {"type": "number"}}}}}},
            "400": _ERROR, "401": _ERROR, "503": _ERROR}}},
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    openapi.add_paths(app, OPENAPI_PATHS)
