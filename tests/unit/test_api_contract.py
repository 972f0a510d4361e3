"""The API's contract without services: the OpenAPI document equals the registered routes (both
ways), parameter validators, key parsing, and the dashboard's SVG charts."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from api import charts, create_app, openapi, params
from api.auth import key_domain
from api.services import BadRequest
from common.settings import Settings

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def app():
    # nothing connects at creation: the URLs are never dialled by these tests
    return create_app(Settings(database_url="postgresql://u@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1/0"))


def test_openapi_paths_and_methods_equal_the_routes(app):
    routes = {(openapi.flask_rule_to_path(r.rule), m.lower()) for r in app.url_map.iter_rules()
              for m in r.methods if m.lower() in METHODS}
    doc = openapi.document(app)
    documented = {(path, m) for path, ops in doc["paths"].items() for m in ops if m in METHODS}
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented paths that no route serves"


def test_openapi_document_is_well_formed(app):
    from openapi_spec_validator import validate

    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    validate(doc)  # raises on anything OpenAPI 3.0 does not allow
    assert doc["openapi"].startswith("3.")
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(doc).replace("'", '"')))
    assert refs <= set(doc["components"]["schemas"])
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for op in ops.values():
            assert op["responses"] and op["summary"]
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path
    assert doc["paths"]["/api/v1/interactions/timeline"]["get"]["security"] == [{"apiKey": []}]
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_unknown_routes_and_methods_are_json(app):
    client = app.test_client()
    got = client.get("/nothing")
    assert got.status_code == 404 and set(got.get_json()["error"]) == {"code", "message"}
    got = client.delete("/api/v1/openapi.json")
    assert got.status_code == 405 and got.get_json()["error"]["code"] == "method_not_allowed"


def test_missing_key_is_401_and_a_key_of_another_domain_403_before_any_lookup(app):
    client = app.test_client()
    assert client.get("/api/v1/entities?q=ab").status_code == 401
    other = client.get("/api/v1/entities?q=ab", headers={"Authorization": "Bearer pr_paragon.abc"})
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "forbidden"
    page = client.get("/dashboard")
    assert page.status_code == 401 and page.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("key,domain", [("pr_pay_ready.x-y_z", "pay_ready"), ("pr_paragon.k", "paragon"),
                                        ("pr_wrong", None), ("sk-123", None), ("pr_.k", None)])
def test_key_domain(key, domain):
    assert key_domain(key) == domain


def test_time_param():
    assert params.time_param({"from": "2026-03-01"}, "from") == dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    assert params.time_param({"to": "2026-03-01T10:00:00Z"}, "to").utcoffset() == dt.timedelta(0)
    assert params.time_param({}, "from") is None
    with pytest.raises(BadRequest, match="from must be an ISO-8601"):
        params.time_param({"from": "yesterday"}, "from")
    with pytest.raises(BadRequest, match="earlier"):
        params.time_window(dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc), dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))


def test_choices_and_int_params():
    assert params.choices_param({"source": "gong, slack,gong"}, "source", params.SOURCES) == ["gong", "slack"]
    with pytest.raises(BadRequest, match="zoom"):
        params.choices_param({"source": "gong,zoom"}, "source", params.SOURCES)
    with pytest.raises(BadRequest):
        params.choices_param({"source": ","}, "source", params.SOURCES)
    assert params.int_param({}, "limit", 50, 1, 500) == 50
    for bad in ("0", "501", "ten", "1.5"):
        with pytest.raises(BadRequest, match="limit"):
            params.int_param({"limit": bad}, "limit", 50, 1, 500)
    with pytest.raises(BadRequest, match="entity_id is required"):
        params.required({"entity_id": " "}, "entity_id")


def test_charts_carry_their_data_points():
    svg = charts.stacked_bar_chart("m", "T <&>", [("2026-03-01", "gong", 3), ("2026-03-01", "slack", 2),
                                                  ("2026-03-02", "gong", 5)])
    values = re.findall(r'data-series="(\w+)" data-value="(\d+)"', svg)
    assert sorted(values) == [("gong", "3"), ("gong", "5"), ("slack", "2")]
    assert "T &lt;&amp;&gt;" in svg and "<&>" not in svg
    bars = charts.bar_chart("n", "N", [("a", 1), ("b", 4)])
    heights = [float(h) for h in re.findall(r'class="bar"[^>]* height="([\d.]+)"', bars)]
    assert heights[1] == pytest.approx(4 * heights[0])
    assert "no data yet" in charts.horizontal_bar_chart("e", "E", [])


def test_dashboard_page_draws_every_metric_and_survives_empty_metrics():
    import decimal

    from api.analytics import render_dashboard
    from resolve_worker.analytics import _jsonable

    assert _jsonable(decimal.Decimal("12")) == 12 and _jsonable(decimal.Decimal("1.5")) == 1.5
    metrics = {
        "interactions_per_source_per_day": {"rows": [{"source": "gong", "day": "2026-03-01", "n": 4}]},
        "most_active_companies": {"rows": [{"company_id": "c1", "name": "Acme <Rail>", "interactions": 9}]},
        "freshness_per_source": {"rows": [{"source": "gong", "last_success_at": "2026-03-01T00:00:00+00:00"},
                                          {"source": "slack", "last_success_at": None}]},
        "resolution": {"rows": [{"entity_type": "person", "method": "email", "identities": 7}]},
        "dead_letters_per_source": {"rows": [{"source": "slack", "stream": "users", "n": 2}]},
        "run_history": {"rows": [{"run_id": "0123456789", "status": "succeeded", "records_in": 30}]},
    }
    page = render_dashboard("pay_ready", metrics)
    for metric in metrics:
        assert f'data-metric="{metric}"' in page
    assert "Acme &lt;Rail&gt;" in page and 'data-value="30"' in page
    empty = render_dashboard("pay_ready", {})
    assert empty.count("no data yet") >= 6
