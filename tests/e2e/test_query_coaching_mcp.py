"""The issue-6 read tools end to end: POST /api/v1/query and GET /api/v1/coaching/report over real
HTTP (gunicorn subprocess), and `payready mcp` as a subprocess driven by the mcp SDK's own stdio
client (list the tools, call each of the four)."""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import anyio
import pytest

from common import procs, runs
from common.cli import _process_env
from embed_worker import pipeline as embed
from ingest_worker import pipeline as ingest
from resolve_worker import entities
from tests.conftest import ROOT, free_port
from tests.e2e.api_server import Client, running_api

SOURCES = ["gong", "slack", "hubspot", "salesforce"]


@pytest.fixture(scope="module")
def synced(domain):
    run = runs.start_run(domain, SOURCES, trigger="test")
    for s in SOURCES:
        ingest.process_source(domain, s, run.run_id)
    entities.resolve_all(domain)
    done = embed.embed_pending(domain)
    runs.finish_run(domain, run.run_id)
    if done.unavailable:
        pytest.skip(done.unavailable)
    return domain


@pytest.fixture(scope="module")
def api(synced, tmp_path_factory):
    env = _process_env(synced)
    from api import auth

    key = auth.create_key(synced, "e2e-i6b")
    log = tmp_path_factory.mktemp("api") / "gunicorn.log"
    with running_api(env, log, "--workers", "1", "--timeout", "120") as base:
        yield Client(base, key)


def test_query_over_http_with_filters_and_cache(api):
    body = {"question": "What did Globex say about integration in June 2025?", "limit": 4}
    status, got = api.call("POST", "/api/v1/query", body)
    assert status == 200, got
    assert got["mode"] == "extractive" and got["cached"] is False
    assert [e["name"] for e in got["understood"]["entities"]][0].startswith("Globex")
    assert got["citations"] and all(c["occurred_at"].startswith("2025-06") for c in got["citations"])
    assert all({"interaction_id", "source", "source_type", "source_id", "occurred_at", "url"} <= set(c)
               for c in got["citations"])
    status, again = api.call("POST", "/api/v1/query", body)
    assert status == 200 and again["cached"] is True and again["answer"] == got["answer"]


def test_coaching_report_over_http(api):
    status, got = api.call("GET", "/api/v1/coaching/report")
    assert status == 200 and got["reps"]
    rep = got["reps"][0]
    assert rep["rep"]["id"] and rep["averages"]["calls"] == len(rep["calls"]) > 0
    call = rep["calls"][0]
    assert 0 <= call["metrics"]["talk_ratio"] <= 1 and call["gong"]["talk_ratio"] is not None
    status, one = api.call("GET", f"/api/v1/coaching/report?rep_id={rep['rep']['id']}&from=2025-01-01&to=2026-01-01")
    assert status == 200 and [r["rep"]["id"] for r in one["reps"]] == [rep["rep"]["id"]]


@pytest.mark.parametrize("method,path,body,status", [
    ("POST", "/api/v1/query", {"question": ""}, 400),
    ("POST", "/api/v1/query", {"question": "pricing", "limit": 0}, 400),
    ("POST", "/api/v1/query", {"question": "pricing", "extra": 1}, 400),
    ("POST", "/api/v1/query", None, 400),
    ("GET", "/api/v1/coaching/report?rep_id=nope", None, 400),
    ("GET", "/api/v1/coaching/report?rep_id=00000000-0000-0000-0000-000000000000", None, 404),
    ("GET", "/api/v1/coaching/report?from=yesterday", None, 400),
    ("GET", "/api/v1/coaching/report?from=2026-01-02&to=2026-01-01", None, 400),
    ("GET", "/api/v1/coaching/report?rep=1", None, 400),
])
def test_bad_requests_get_json_errors(api, method, path, body, status):
    got, payload = api.call(method, path, body)
    assert got == status, payload
    assert set(payload["error"]) == {"code", "message"}


def test_query_needs_an_api_key(api):
    assert api.call("POST", "/api/v1/query", {"question": "pricing"}, key=None)[0] == 401
    assert api.call("GET", "/api/v1/coaching/report", key=None)[0] == 401


async def _drive_mcp(env: dict) -> dict:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    payready = str(Path(sys.executable).parent / "payready")
    params = StdioServerParameters(command=payready, args=["mcp"], env=env, cwd=str(ROOT))
    out: dict = {}
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                out["tools"] = {t.name: t.input_schema for t in (await session.list_tools()).tools}

                async def call(name: str, args: dict):
                    result = await session.call_tool(name, args)
                    text = "".join(c.text for c in result.content if getattr(c, "text", None))
                    return result.is_error, (json.loads(text) if not result.is_error else text)

                out["search"] = await call("search_customer_interactions",
                                           {"query": "virtual card rebates", "limit": 3, "sources": ["salesforce"]})
                out["query"] = await call("natural_language_query",
                                          {"question": "What did Globex say about integration in June 2025?",
                                           "limit": 3})
                out["report"] = await call("generate_coaching_report", {"from_date": "2025-01-01"})
                company = out["query"][1]["understood"]["entities"][0]["id"]
                out["timeline"] = await call("get_interaction_timeline", {"entity_id": company, "limit": 2})
                out["bad_timeline"] = await call("get_interaction_timeline", {"entity_id": "not-a-uuid"})
                out["bad_limit"] = await call("natural_language_query", {"question": "x", "limit": 0})
    return out


def test_mcp_over_stdio_with_the_sdk_client(synced):
    env = {**_process_env(synced), "PAYREADY_LOG_LEVEL": "warning"}
    out = anyio.run(_drive_mcp, env)
    assert set(out["tools"]) == {"search_customer_interactions", "generate_coaching_report",
                                 "get_interaction_timeline", "natural_language_query"}
    assert out["tools"]["natural_language_query"]["required"] == ["question"]
    assert out["tools"]["get_interaction_timeline"]["required"] == ["entity_id"]
    assert out["tools"]["search_customer_interactions"]["properties"]["sources"]["anyOf"][0]["items"]["enum"] == \
        ["gong", "slack", "hubspot", "salesforce"]

    error, search = out["search"]
    assert not error and len(search["results"]) == 3
    assert all(r["source"] == "salesforce" and r["score"] > 0 for r in search["results"])
    error, answer = out["query"]
    assert not error and answer["citations"] and answer["answer"].startswith("[1] ")
    error, report = out["report"]
    assert not error and report["reps"] and report["from"].startswith("2025-01-01")
    error, timeline = out["timeline"]
    assert not error and len(timeline["items"]) == 2 and timeline["next_cursor"]
    error, message = out["bad_timeline"]
    assert error and "UUID" in message
    assert out["bad_limit"][0] is True


async def _drive_mcp_http(url: str) -> tuple[set, dict]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            result = await session.call_tool("natural_language_query", {"question": "virtual card rebates",
                                                                        "limit": 2})
            text = "".join(c.text for c in result.content if getattr(c, "text", None))
            return names, json.loads(text)


def test_mcp_over_streamable_http(synced, tmp_path):
    port = free_port()
    env = {**_process_env(synced), "PAYREADY_LOG_LEVEL": "warning"}
    payready = str(Path(sys.executable).parent / "payready")
    proc = procs.start([payready, "mcp", "--transport", "streamable-http", "--port", str(port)], env,
                       tmp_path / "mcp.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        names, answer = anyio.run(_drive_mcp_http, f"http://127.0.0.1:{port}/mcp")
    finally:
        procs.stop(proc)
    assert "natural_language_query" in names and len(names) == 4
    assert len(answer["citations"]) == 2 and answer["citations"][0]["source"] == "salesforce"
