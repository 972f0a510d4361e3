"""The API over real HTTP (gunicorn subprocess) on a synced domain: auth (401, 403 for another
domain's key), trigger, status, entities, timeline with keyset pagination and cache tiers, the
audit log, the dashboard rendered by headless Chromium, and JSON errors for bad requests."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from common import db
from common.cli import _process_env
from tests.conftest import ROOT, drop_domain, make_settings
from tests.e2e.api_server import Client, running_api


@pytest.fixture(scope="module")
def api(domain, workers, tmp_path_factory):
    env = _process_env(domain)
    created = subprocess.run([sys.executable, "-m", "common.cli", "keys", "create", "--name", "e2e"],
                             cwd=ROOT, env={**__import__("os").environ, **env}, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    log = tmp_path_factory.mktemp("api") / "gunicorn.log"
    with running_api(env, log, "--workers", "2") as base:
        yield Client(base, key)


def test_auth_is_required(api):
    assert api.call("GET", "/api/v1/entities?q=acme", key=None)[0] == 401
    status, body = api.call("GET", "/api/v1/entities?q=acme", key="pr_wrong")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert api.call("GET", "/healthz", key=None) == (200, {"status": "ok"})


def test_trigger_status_entities_and_timeline(api, domain):
    status, body = api.call("POST", "/api/v1/sync/trigger", {"sources": ["gong", "slack", "hubspot", "salesforce"]})
    assert status == 202 and body["created"] and body["status_url"].endswith(body["run_id"])
    again = api.call("POST", "/api/v1/sync/trigger", {"sources": ["hubspot"]})
    assert again[0] == 202 and again[1]["run_id"] == body["run_id"] and not again[1]["created"]
    deadline = time.monotonic() + 600
    while True:
        status, run = api.call("GET", body["status_url"])
        if run["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert run["status"] == "succeeded", run
    assert all(c["in"] == c["processed"] + c["dead_lettered"] for c in run["sources"].values())

    status, found = api.call("GET", "/api/v1/entities?q=acme")
    companies = [e for e in found["items"] if e["type"] == "company"]
    assert status == 200 and companies
    status, entity = api.call("GET", f"/api/v1/entities/{companies[0]['id']}")
    assert status == 200 and entity["identities"] and entity["interaction_count"] > 0

    seen, cursor, pages = [], None, 0
    while True:
        path = f"/api/v1/interactions/timeline?entity_id={companies[0]['id']}&limit=3"
        status, page = api.call("GET", path + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200
        seen += [(i["occurred_at"], i["id"]) for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == entity["interaction_count"] and len(set(seen)) == len(seen)
    assert seen == sorted(seen, reverse=True), "newest first, no gaps or repeats across pages"
    assert pages > 1
    status, again = api.call("GET", f"/api/v1/interactions/timeline?entity_id={companies[0]['id']}&limit=3")
    assert status == 200 and api.last_headers["X-Cache"] in ("hot", "warm")

    with db.transaction(domain) as conn:
        audited = conn.execute(sa.text(
            "SELECT actor, target, outcome FROM audit_log WHERE action = 'POST /api/v1/sync/trigger' ORDER BY id"
        )).all()
    assert [tuple(r) for r in audited[:2]] == [("key:e2e", f"run_id={body['run_id']}", "202")] * 2


def test_a_key_of_another_domain_is_forbidden(api, stack_urls):
    from api import auth
    from common.cli import migrate

    other = make_settings(stack_urls, f"t_{uuid.uuid4().hex[:10]}")
    migrate(other)
    try:
        status, body = api.call("GET", "/api/v1/entities?q=acme", key=auth.create_key(other, "elsewhere"))
    finally:
        drop_domain(other)
    assert status == 403 and body["error"]["code"] == "forbidden"


class _Charts(HTMLParser):
    """The dashboard's SVG charts as the browser left them: metric → drawn count and bars."""

    def __init__(self):
        super().__init__()
        self.charts: dict[str, dict] = {}
        self.current = None
        self.ready = False

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        a = dict(attrs)
        if tag == "body":
            self.ready = a.get("data-charts-ready") == "true"
        elif tag == "svg" and "chart" in (a.get("class") or ""):
            self.current = self.charts.setdefault(a["data-metric"], {"drawn": int(a.get("data-drawn", -1)), "bars": []})
        elif tag == "rect" and a.get("class") == "bar" and self.current is not None:
            self.current["bars"].append((a.get("data-label"), a.get("data-series"), float(a["data-value"])))

    def handle_endtag(self, tag):  # noqa: ANN001
        if tag == "svg":
            self.current = None


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium not installed (.ci/run installs it)")
def test_dashboard_renders_its_charts_in_chromium(api, tmp_path):
    status, metrics = api.call("GET", "/api/v1/analytics/dashboard")
    assert status == 200 and metrics["interactions_per_source_per_day"]["rows"]
    url = api.base.replace("http://", f"http://dashboard:{api.key}@") + "/dashboard"
    dom = subprocess.run(
        [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    page = _Charts()
    page.feed(dom)
    assert page.ready, dom[:500]
    per_day = page.charts["interactions_per_source_per_day"]
    assert {(label, series): v for label, series, v in per_day["bars"]} == {
        (r["day"], r["source"]): r["n"] for r in metrics["interactions_per_source_per_day"]["rows"]}
    active = page.charts["most_active_companies"]
    assert [v for _, _, v in active["bars"]] == [r["interactions"] for r in metrics["most_active_companies"]["rows"]]
    runs = page.charts["run_history"]
    assert sum(v for _, _, v in runs["bars"]) == sum(r["records_in"] for r in metrics["run_history"]["rows"])
    for metric in ("interactions_per_source_per_day", "most_active_companies", "run_history", "resolution"):
        chart = page.charts[metric]
        assert chart["bars"] and chart["drawn"] == len(chart["bars"]), f"{metric}: the browser drew every bar"


@pytest.mark.parametrize("method,path,body,status", [
    ("GET", "/api/v1/interactions/timeline", None, 400),
    ("GET", "/api/v1/interactions/timeline?entity_id=not-a-uuid", None, 400),
    ("GET", "/api/v1/interactions/timeline?entity_id=00000000-0000-0000-0000-000000000000", None, 404),
    ("GET", "/api/v1/interactions/timeline?entity_id=00000000-0000-0000-0000-000000000000&limit=0", None, 400),
    ("GET", "/api/v1/interactions/timeline?entity_id=00000000-0000-0000-0000-000000000000&from=yesterday", None, 400),
    ("GET", "/api/v1/interactions/timeline?entity_id=00000000-0000-0000-0000-000000000000&source=zoom", None, 400),
    ("GET", "/api/v1/interactions/timeline?entity_id=00000000-0000-0000-0000-000000000000&cursor=zzz", None, 400),
    ("POST", "/api/v1/sync/trigger", {"sources": ["zoom"]}, 400),
    ("POST", "/api/v1/sync/trigger", {"sources": "gong"}, 400),
    # each of these once started a sync of every source: a body that is not JSON, a misspelt field
    ("POST", "/api/v1/sync/trigger", b"\x00", 400),
    ("POST", "/api/v1/sync/trigger", b"sources=gong", 400),
    ("POST", "/api/v1/sync/trigger", {"source": ["gong"]}, 400),
    ("POST", "/api/v1/sync/trigger", {"sources": {}}, 400),
    ("POST", "/api/v1/sync/trigger", {"sources": []}, 400),
    ("GET", "/api/v1/entities?q=ac%00me", None, 400),
    ("GET", "/api/v1/coaching/report?from=0001-01-01T00:00:00%2B01:00", None, 400),  # before year 1 in UTC
    ("POST", "/api/v1/query", {"question": "\ud800 pricing"}, 400),
    ("GET", "/api/v1/sync/runs/nope", None, 404),
    ("GET", "/api/v1/entities?q=a", None, 400),
    ("GET", "/api/v1/nothing-here", None, 404),
])
def test_bad_requests_get_json_errors(api, method, path, body, status):
    got, payload = api.call(method, path, body)
    assert got == status
    assert set(payload["error"]) == {"code", "message"} and "Traceback" not in payload["error"]["message"]


@pytest.mark.parametrize("method,path,allowed", [("DELETE", "/api/v1/sync/trigger", {"POST", "OPTIONS"}),
                                                 ("TRACE", "/readyz", {"GET", "HEAD", "OPTIONS"})])
def test_a_method_the_route_lacks_is_a_json_405_with_allow(api, method, path, allowed):
    got, payload = api.call(method, path)
    assert got == 405 and payload["error"]["code"] == "method_not_allowed"
    assert set(api.last_headers["Allow"].replace(" ", "").split(",")) == allowed
