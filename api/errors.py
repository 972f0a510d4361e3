"""JSON errors with the right status, never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from api.services import BadRequest, NotFound, is_text

log = logging.getLogger("payready.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str):  # noqa: ANN201
    return jsonify({"error": {"code": code, "message": message}}), status


def query_has_nul(query_string: str) -> bool:
    """A NUL (``%00``) in the query: Postgres refuses it in text, so a search for it was a 500."""
    return "%00" in query_string or "\x00" in query_string


def _query_is_text() -> None:
    # Werkzeug decodes the query string as strict UTF-8 on first use of request.args and raises
    # UnicodeDecodeError, which every route (and the audit hook after it) would turn into a 500
    try:
        query = request.query_string.decode()
    except UnicodeDecodeError:
        raise BadRequest("the query string is not valid UTF-8 (percent-encode non-ASCII characters)") from None
    if query_has_nul(query):
        raise BadRequest("the query string holds a NUL character (%00), which no parameter accepts")


def _json_is_text() -> None:
    """JSON strings may escape a NUL or half a surrogate pair (``\\u0000``, ``\\ud800``): neither can
    be stored or encoded, so they are refused here rather than failing deep in a route."""
    if request.method in ("POST", "PUT", "PATCH") and request.is_json:
        body = request.get_json(silent=True)  # parsed once, kept for the route; a bad body is its 400
        if body is not None and not _is_text(body):
            raise BadRequest("the JSON body holds a NUL character or an unpaired surrogate (\\u0000, \\ud800)")


def _is_text(value: object) -> bool:
    if isinstance(value, str):
        return is_text(value)
    if isinstance(value, dict):
        return all(_is_text(k) and _is_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_text(v) for v in value)
    return True


def init_app(app: Flask) -> None:
    app.before_request(_query_is_text)
    app.before_request(_json_is_text)

    @app.errorhandler(ApiError)
    def _api(exc: ApiError):  # noqa: ANN202
        body, status = error_response(exc.status, exc.code, exc.message)
        return body, status, exc.headers

    @app.errorhandler(BadRequest)
    def _bad(exc: BadRequest):  # noqa: ANN202
        return error_response(400, "bad_request", str(exc))

    @app.errorhandler(NotFound)
    def _missing(exc: NotFound):  # noqa: ANN202
        return error_response(404, "not_found", str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # noqa: ANN202
        body, status = error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                                      exc.description or exc.name)
        # the exception's own headers, such as the Allow a 405 must carry (RFC 9110 §15.5.6)
        return body, status, [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # noqa: ANN202
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error; see the server log")
