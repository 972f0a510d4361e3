"""The API over real HTTP (gunicorn subprocess) on a synced domain: auth, trigger, status,
entities, timeline with keyset pagination, and JSON errors for bad requests."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from common import procs
from common.cli import _process_env
from tests.conftest import ROOT, free_port


class Client:
    def __init__(self, base: str, key: str | None = None):
        self.base, self.key = base, key

    def call(self, method: str, path: str, body: dict | None = None, key: str | None = "default"):
        key = self.key if key == "default" else key
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


@pytest.fixture(scope="module")
def api(domain, workers, tmp_path_factory):
    env = _process_env(domain)
    created = subprocess.run([sys.executable, "-m", "common.cli", "keys", "create", "--name", "e2e"],
                             cwd=ROOT, env={**__import__("os").environ, **env}, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "gunicorn.log"
    proc = procs.start([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                        "api:create_app()"], env, log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    try:
        yield Client(base, key)
    finally:
        procs.stop(proc)


def test_auth_is_required(api):
    assert api.call("GET", "/api/v1/entities?q=acme", key=None)[0] == 401
    status, body = api.call("GET", "/api/v1/entities?q=acme", key="pr_wrong")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert api.call("GET", "/healthz", key=None) == (200, {"status": "ok"})


def test_trigger_status_entities_and_timeline(api):
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
    ("GET", "/api/v1/sync/runs/nope", None, 404),
    ("GET", "/api/v1/entities?q=a", None, 400),
    ("GET", "/api/v1/nothing-here", None, 404),
])
def test_bad_requests_get_json_errors(api, method, path, body, status):
    got, payload = api.call(method, path, body)
    assert got == status
    assert set(payload["error"]) == {"code", "message"} and "Traceback" not in payload["error"]["message"]
