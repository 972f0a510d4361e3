"""The timeline's fast path (api.timeline.FastPath) answers exactly as the Flask view does: same
status, headers and body for every request it takes, every other request handed to Flask
unchanged, and the same audit row and request count for a success."""
from __future__ import annotations

import uuid

import pytest
import redis
import sqlalchemy as sa
from prometheus_client import REGISTRY

from api import auth, create_app
from api.timeline import FastPath, query_args
from common import db
from tests.integration.test_serving import seed

ROUTE = "/api/v1/interactions/timeline"


@pytest.fixture(scope="module")
def seeded(domain):
    return seed(domain)


@pytest.fixture(scope="module")
def app(domain):
    client = redis.Redis.from_url(domain.redis_url)
    for key in client.scan_iter(f"{domain.key_prefix}tl:*"):
        client.delete(key)
    return create_app(domain)


@pytest.fixture(scope="module")
def key(domain):
    return auth.create_key(domain, "fast")


class Recorder:
    """Calls a WSGI callable and keeps what it answered; counts calls that reached Flask."""

    def __init__(self, app, fast: FastPath):
        self.app, self.fast, self.flask_calls = app, fast, 0
        original = fast.flask_wsgi

        def counting(environ, start_response):
            self.flask_calls += 1
            return original(environ, start_response)
        fast.flask_wsgi = counting

    def get(self, wsgi, query: str, headers: dict) -> tuple[str, dict, bytes]:
        from werkzeug.test import EnvironBuilder

        environ = EnvironBuilder(path=ROUTE, query_string=query, headers=headers).get_environ()
        answer = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"], answer["headers"] = status, dict(response_headers)
        body = b"".join(wsgi(environ, start_response))
        return answer["status"], answer["headers"], body


def test_the_fast_path_answers_as_the_flask_view_does(app, seeded, key, domain):
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    rec = Recorder(app, fast)
    bearer = {"Authorization": f"Bearer {key}"}
    other = f"pr_{domain.domain}.{uuid.uuid4().hex}"
    company = seeded["company"]
    cases = [  # (query, headers, served by the fast path)
        (f"entity_id={company}&limit=5", bearer, True),
        (f"entity_id={company}&limit=5", bearer, True),  # now hot
        (f"entity_id={seeded['alice']}&source=gong,slack&type=call&limit=3", bearer, True),
        (f"entity_id={company}&from=2026-03-01T03:00:00Z&to=2026-03-02&limit=2&limit=9", bearer, True),
        (f"entity_id={company}&limit=0", bearer, False),
        (f"entity_id={company}&note=a%00b", bearer, False),  # an unused parameter, but a NUL: 400
        (f"entity_id={company}&source=zoom", bearer, False),
        (f"entity_id={uuid.uuid4()}", bearer, False),
        ("entity_id=not-a-uuid", bearer, False),
        ("limit=5", bearer, False),
        (f"entity_id={company}", {}, False),
        (f"entity_id={company}", {"Authorization": f"Bearer {other}"}, False),
        (f"entity_id={company}", {"Authorization": "Bearer pr_elsewhere.x"}, False),
    ]
    for query, headers, fast_served in cases:
        before = rec.flask_calls
        via_fast = rec.get(fast, query, headers)
        assert (rec.flask_calls == before) is fast_served, query
        via_flask = rec.get(fast.flask_wsgi, query, headers)
        assert via_fast[0] == via_flask[0], query
        assert via_fast[2] == via_flask[2], query
        fast_headers, flask_headers = via_fast[1], via_flask[1]
        if fast_served:  # the tier that answered may differ between the two calls
            assert {fast_headers.pop("X-Cache"), flask_headers.pop("X-Cache")} <= {"hot", "warm", "cold"}
        assert fast_headers == flask_headers, query
    cursor_page = rec.get(fast, f"entity_id={company}&limit=4", bearer)
    assert cursor_page[0] == "200 OK" and b'"next_cursor":"' in cursor_page[2]


def test_a_fast_answer_is_audited_and_counted_like_a_flask_one(app, seeded, key, domain):
    client = app.test_client()
    counted = REGISTRY.get_sample_value("pay_ready_http_requests_total", {"route": ROUTE, "status": "200"}) or 0
    response = client.get(f"{ROUTE}?entity_id={seeded['bob']}&limit=2", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert REGISTRY.get_sample_value("pay_ready_http_requests_total", {"route": ROUTE, "status": "200"}) == counted + 1
    app.extensions["payready_audit"].flush()
    with db.transaction(domain) as conn:
        row = conn.execute(sa.text("SELECT actor, action, target, outcome, detail FROM audit_log "
                                   "ORDER BY id DESC LIMIT 1")).mappings().one()
    assert (row["actor"], row["action"], row["target"], row["outcome"]) == \
        ("key:fast", f"GET {ROUTE}", f"entity_id={seeded['bob']}", "200")
    assert row["detail"]["ms"] >= 0


def test_a_failure_inside_the_fast_path_costs_speed_not_the_answer(app, seeded, key, caplog):
    class Broken:
        def page_body(self, *args, **kwargs):
            raise RuntimeError("tier exploded")

    fast, tiers = app.wsgi_app, app.wsgi_app.tiers
    fast.tiers = Broken()  # the Flask view still has the real tiers
    try:
        response = app.test_client().get(f"{ROUTE}?entity_id={seeded['alice']}&limit=2",
                                          headers={"Authorization": f"Bearer {key}"})
    finally:
        fast.tiers = tiers
    assert response.status_code == 200 and response.get_json()["items"]
    assert "timeline fast path failed (RuntimeError: tier exploded); Flask answers" in caplog.text


@pytest.mark.parametrize("query", ["a=1&b=&a=2&c=x%2By+z&d=%C3%A9", "flag&x=%ZZ&y=%FF&z=1;w=2", "", "=v&&k==", "n=\u00e9t\u00e9"])
def test_query_args_read_the_query_as_flask_does(query):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    environ = EnvironBuilder(path=ROUTE, query_string=query).get_environ()
    assert query_args(environ["QUERY_STRING"]) == Request(environ).args.to_dict()


@pytest.mark.parametrize("path", [ROUTE, "/api/v1/entities"])
def test_a_query_string_that_is_not_utf8_is_a_json_400(app, seeded, key, domain, path):
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path=path, headers={"Authorization": f"Bearer {key}"}).get_environ()
    environ["QUERY_STRING"] = f"entity_id={seeded['alice']}&q=caf\xe9"  # a raw Latin-1 byte, not UTF-8
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status
    body = b"".join(app(environ, start_response))
    assert answer["status"].startswith("400"), (answer, body)
    assert b'"code":"bad_request"' in body and b"UTF-8" in body
    app.extensions["payready_audit"].flush()
    with db.transaction(domain) as conn:
        row = conn.execute(sa.text("SELECT action, target, outcome FROM audit_log ORDER BY id DESC LIMIT 1")).one()
    assert (row.action, row.target, row.outcome) == (f"GET {path}", None, "400")


@pytest.mark.parametrize("path, query", [(ROUTE, "entity_id={alice}&x=%00"), ("/api/v1/entities", "q=ac%00me")])
def test_a_nul_in_the_query_is_a_json_400(app, seeded, key, path, query):
    """A NUL once reached Postgres from ``/api/v1/entities?q=`` and came back a 500."""
    response = app.test_client().get(f"{path}?{query.format(alice=seeded['alice'])}",
                                     headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400 and "NUL" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("question", ["what did ac\u0000me say", "\ud800 pricing"])
def test_a_json_body_with_a_nul_or_an_unpaired_surrogate_is_a_json_400(app, key, question):
    """A lone surrogate once failed the query cache's hashing with a 500."""
    response = app.test_client().post("/api/v1/query", json={"question": question},
                                      headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400 and "surrogate" in response.get_json()["error"]["message"]
