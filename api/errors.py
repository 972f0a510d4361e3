"""JSON errors with the right status, never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from api.services import BadRequest, NotFound

log = logging.getLogger("payready.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str):  # noqa: ANN201
    return jsonify({"error": {"code": code, "message": message}}), status


def _query_is_utf8() -> None:
    # Werkzeug decodes the query string as strict UTF-8 on first use of request.args and raises
    # UnicodeDecodeError, which every route (and the audit hook after it) would turn into a 500
    try:
        request.query_string.decode()
    except UnicodeDecodeError:
        raise BadRequest("the query string is not valid UTF-8 (percent-encode non-ASCII characters)") from None


def init_app(app: Flask) -> None:
    app.before_request(_query_is_utf8)

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
        return error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                              exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # noqa: ANN202
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error; see the server log")
