"""GET /api/v1/interactions/timeline: a person's or company's interactions through the memory tiers.

The route is the API's hottest read, so it is served twice over: by the Flask view, and by
:class:`FastPath`, a WSGI layer in front of Flask that answers the plain success itself. Both call
the same functions (authentication, parameter parsing, the tiers, the audit row, the request
counter); the fast path only skips Flask's per-request machinery (context push, URL routing,
hook dispatch, the Response object), which was about 60 % of a hot hit's instructions. Anything
it would not answer with 200 (no or bad key, bad parameters, an unknown entity, any error) goes
to Flask untouched, so errors keep one implementation.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug import urls  # noqa: F401 - registers the "werkzeug.url_quote" decoding error handler

from api import audit, auth, metrics, openapi, params
from api.errors import ApiError, query_has_nul
from api.services import BadRequest, NotFound
from common.timeline_cache import TimelineTiers

ROUTE = "/api/v1/interactions/timeline"
log = logging.getLogger("payready.api.timeline")
bp = Blueprint("timeline", __name__, url_prefix="/api/v1")


def page(tiers: TimelineTiers, args: Mapping[str, str]) -> tuple[bytes, str]:
    """(the page's JSON, the tier that served it) for the query ``args``; BadRequest names a bad one."""
    entity_id = params.required(args, "entity_id")
    start, end = params.time_param(args, "from"), params.time_param(args, "to")
    params.time_window(start, end)
    return tiers.page_body(
        entity_id, start=start, end=end, sources=params.choices_param(args, "source", params.SOURCES),
        kinds=params.choices_param(args, "type", params.KINDS),
        limit=params.int_param(args, "limit", 50, 1, 500), cursor=args.get("cursor") or None)


@bp.get("/interactions/timeline")
def timeline():  # noqa: ANN201
    # a plain dict: MultiDict.get builds a KeyError exception for every absent parameter (five here)
    body, tier = page(current_app.extensions["payready_timeline"], request.args.to_dict())
    # the tiers hand back the finished JSON: a hot hit encodes nothing
    return Response(body, mimetype="application/json", headers={"X-Cache": tier})


def query_args(query_string: str) -> dict[str, str]:
    """The query as ``request.args.to_dict()`` reads it: the first value of each name, decoded as
    Werkzeug decodes it (UTF-8; invalid escapes stay percent-encoded, by its registered handler)."""
    args: dict[str, str] = {}
    for name, value in parse_qsl(query_string.encode("latin-1").decode(), keep_blank_values=True,
                                 errors="werkzeug.url_quote"):
        args.setdefault(name, value)
    return args


class FastPath:
    """WSGI middleware: successful timeline GETs without Flask's request machinery (module doc)."""

    def __init__(self, app: Flask):
        self.app = app
        self.flask_wsgi = app.wsgi_app
        self.tiers: TimelineTiers = app.extensions["payready_timeline"]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != ROUTE or environ.get("REQUEST_METHOD") != "GET":
            return self.flask_wsgi(environ, start_response)
        started = time.perf_counter()
        try:
            actor = auth.actor(self.app, ROUTE, environ)
            query = environ.get("QUERY_STRING", "")
            if query_has_nul(query):
                raise BadRequest("NUL in the query")  # Flask's hook words the 400
            args = query_args(query)
            body, tier = page(self.tiers, args)
        except (ApiError, BadRequest, NotFound, UnicodeDecodeError):  # the request's fault: Flask words the 4xx
            return self.flask_wsgi(environ, start_response)
        except Exception as exc:  # noqa: BLE001 - costs speed, never an answer: Flask tries again
            log.warning("timeline fast path failed (%s: %s); Flask answers", type(exc).__name__, exc)
            return self.flask_wsgi(environ, start_response)
        audit.record_read(self.app, actor, f"GET {ROUTE}", f"entity_id={args['entity_id']}", started)
        metrics.count(ROUTE, 200)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("X-Cache", tier)])
        return [body]


_RESPONSES = openapi.responses("A page of the timeline", "TimelinePage", 400, 401, 403, 404)
_RESPONSES["200"]["headers"] = {"X-Cache": {"description": "The memory tier that answered",
                                            "schema": {"type": "string", "enum": ["hot", "warm", "cold"]}}}

OPENAPI = {
    ROUTE: {"get": {
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
    app.wsgi_app = FastPath(app)  # type: ignore[method-assign]
