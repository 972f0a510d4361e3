"""Natural-language query and coaching reports on the bundled sample in real Postgres and Redis:
filters and citations, extractive and LLM answers (fake OpenAI server), the cache and its
invalidation, and coaching metrics from the real Gong sample turns."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from api import coaching_report, nlquery, services
from common import db, runs, settings as settings_mod
from common.chunking import estimate_tokens
from embed_worker import pipeline as embed
from ingest_worker import pipeline as ingest
from ingest_worker.generate import SAMPLE_DIR
from resolve_worker import entities
from tests.fakes.openai_server import FakeOpenAIServer

SOURCES = ("gong", "slack", "hubspot", "salesforce")
UTC = dt.timezone.utc
NOW = dt.datetime(2025, 7, 28, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def synced(domain):
    run = runs.start_run(domain, list(SOURCES), trigger="test")
    for s in SOURCES:
        ingest.process_source(domain, s, run.run_id)
    entities.resolve_all(domain)
    done = embed.embed_pending(domain)
    runs.finish_run(domain, run.run_id)
    if done.unavailable:
        pytest.skip(done.unavailable)
    return domain


def rows(settings, sql: str, **params) -> list:
    with db.transaction(settings) as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def company_id(settings, name: str) -> str:
    return rows(settings, "SELECT id::text FROM companies WHERE name ILIKE :n ORDER BY name LIMIT 1",
                n=f"{name}%")[0]["id"]


def test_entity_and_time_filters_with_citations(synced):
    got = nlquery.answer(synced, "What did Globex say about integration in June 2025?", limit=5, now=NOW,
                         use_cache=False)
    understood = got["understood"]
    globex = company_id(synced, "Globex")
    assert [e["id"] for e in understood["entities"]] == [globex]
    assert understood["from"].startswith("2025-06-01") and understood["to"].startswith("2025-07-01")
    assert got["mode"] == "extractive" and got["citations"]
    linked = {r["interaction_id"] for r in rows(
        synced, "SELECT interaction_id FROM interaction_entities WHERE entity_id = :e", e=globex)}
    for c in got["citations"]:
        assert c["interaction_id"] in linked
        assert dt.datetime(2025, 6, 1, tzinfo=UTC) <= dt.datetime.fromisoformat(c["occurred_at"]) < \
            dt.datetime(2025, 7, 1, tzinfo=UTC)
        assert c["source"] in SOURCES and c["source_id"] and c["source_type"] and c["chunk_id"]
        stored = rows(synced, "SELECT source, source_type, source_id FROM interactions WHERE id = :i",
                      i=c["interaction_id"])[0]
        assert stored == {k: c[k] for k in ("source", "source_type", "source_id")}
    gong = [c for c in got["citations"] if c["source"] == "gong"]
    assert gong and all(c["url"].startswith("https://app.gong.io/call?id=") for c in gong)


def test_extractive_answer_attributes_passages_to_speakers(synced):
    got = nlquery.answer(synced, "pricing concerns on gong calls", limit=4, now=NOW, use_cache=False)
    assert got["understood"]["sources"] == ["gong"] and got["understood"]["kinds"] == ["call"]
    assert got["citations"] and all(c["source"] == "gong" and c["kind"] == "call" for c in got["citations"])
    lines = got["answer"].splitlines()
    assert len(lines) == len(got["citations"])
    assert any(c["speakers"] for c in got["citations"])
    for n, (line, c) in enumerate(zip(lines, got["citations"]), 1):
        who = line.split(" (gong call, ")[0]
        assert who.startswith(f"[{n}] ")
        assert who == f"[{n}] " + (", ".join(c["speakers"]) or c["title"])  # a call brief has no speaker


def test_without_filters_semantic_hits_come_first_with_scores(synced):
    got = nlquery.answer(synced, "virtual card rebates", limit=3, now=NOW, use_cache=False)
    scores = [c["score"] for c in got["citations"]]
    assert len(scores) == 3 and all(s is not None for s in scores)
    # the citations keep the search function's fused ranking (meaning + keywords)
    ranked = services.search(synced, "virtual card rebates", k=6)
    assert [c["chunk_id"] for c in got["citations"]] == [h["chunk_id"] for h in ranked][:3]
    assert {c["retrieval"] for c in got["citations"]} <= {"semantic", "keyword"}


def test_bad_questions_are_rejected(synced):
    for question, limit in (("", 5), ("   ", 5), ("x" * 2001, 5), ("ok", 0), ("ok", 51), ("ok", "5")):
        with pytest.raises(services.BadRequest):
            nlquery.answer(synced, question, limit, now=NOW, use_cache=False)


def test_cache_hit_on_repeat_and_miss_after_a_data_version_bump(synced):
    question = "What did Globex say about next steps in June 2025?"
    first = nlquery.answer(synced, question, limit=3, now=NOW)
    assert first["cached"] is False
    again = nlquery.answer(synced, "  what did globex say about NEXT steps in june 2025 ", limit=3, now=NOW)
    assert again["cached"] is True
    assert {k: v for k, v in again.items() if k != "cached"} == {k: v for k, v in first.items() if k != "cached"}
    # a new sync run (nothing new landed) changes the data version: the next ask is computed afresh
    run = runs.start_run(synced, ["gong"], trigger="test")
    ingest.process_source(synced, "gong", run.run_id)
    runs.finish_run(synced, run.run_id)
    fresh = nlquery.answer(synced, question, limit=3, now=NOW)
    assert fresh["cached"] is False and fresh["data_version"] != first["data_version"]
    assert nlquery.answer(synced, question, limit=3, now=NOW)["cached"] is True


def test_llm_answer_gets_a_pruned_pii_masked_context(synced):
    question = "What did Globex say about integration in June 2025? Reply to renee@globex.co"
    plain = nlquery.answer(synced, question, limit=8, now=NOW, use_cache=False)
    top = max(plain["citations"], key=lambda c: c["score"] or 0)
    secret_email, secret_phone = "jane.doe@globex.co", "+1 415 555 0134"
    with db.transaction(synced) as conn:  # PII in the stored passage the model will certainly see
        conn.execute(sa.text("UPDATE chunks SET text = text || :extra WHERE id = CAST(:id AS uuid)"),
                     {"extra": f" Reach me at {secret_email} or {secret_phone}.", "id": top["chunk_id"]})
    with FakeOpenAIServer() as fake:
        budget = 200
        llm = settings_mod._replace(synced, openai_api_key="sk-test", openai_base_url=fake.base_url,
                                    openai_chat_model="gpt-test", answer_context_tokens=budget)
        got = nlquery.answer(llm, question, limit=8, now=NOW, use_cache=False)
    assert got["mode"] == "llm" and got["answer"] == fake.chat_reply
    [request] = fake.chat_requests
    assert request["model"] == "gpt-test"
    sent = json.dumps(request)
    for secret in (secret_email, secret_phone, "renee@globex.co"):
        assert secret not in sent
    assert "[EMAIL]" in sent and "[PHONE]" in sent
    user = request["messages"][-1]["content"]
    context = user.split("\n\nQuestion:")[0].removeprefix("Context:\n").splitlines()
    assert len(context) == len(got["citations"]) >= 1
    assert got["context"]["tokens"] <= budget and got["context"]["budget_tokens"] == budget
    passages = [line.split("\t", 1)[1] for line in context]
    assert sum(estimate_tokens(p) for p in passages) <= budget
    assert got["citations"][0]["chunk_id"] == top["chunk_id"]  # the best passage is essential: first
    assert got["context"]["tiers"]["essential"] == 1
    texts = rows(synced, "SELECT text FROM chunks WHERE id::text = ANY(:ids)",
                 ids=[c["chunk_id"] for c in plain["citations"]])
    assert sum(estimate_tokens(r["text"]) for r in texts) > budget, "the passages alone would overflow the budget"


def test_llm_failure_falls_back_to_the_extractive_answer(synced):
    with FakeOpenAIServer() as fake:
        fake.fail_next(5, 500)
        llm = settings_mod._replace(synced, openai_api_key="sk-test", openai_base_url=fake.base_url)
        got = nlquery.answer(llm, "integration questions", limit=3, now=NOW)
    assert got["mode"] == "extractive" and got["llm_error"] and got["citations"] and got["cached"] is False


# ---- coaching ----

def _sample(stream: str) -> list[dict]:
    out = []
    for line in (SAMPLE_DIR / "gong" / f"{stream}.jsonl").open():
        msg = json.loads(line)
        if msg.get("type") == "RECORD":
            out.append(msg["record"]["data"])
    return out


def _expected_talk_ratio(call_id: str, rep_speaker: str) -> float:
    """Straight from the landed JSON: per segment, last sentence end - first sentence start."""
    [transcript] = [t for t in _sample("callTranscripts") if str(t.get("callId")) == call_id]
    spoken: dict[str, int] = {}
    for seg in transcript["transcript"]:
        sentences = seg["sentences"]
        spoken[seg["speakerId"]] = spoken.get(seg["speakerId"], 0) + sentences[-1]["end"] - sentences[0]["start"]
    return spoken.get(rep_speaker, 0) / sum(spoken.values())


def test_coaching_report_from_the_gong_sample(synced):
    body = coaching_report.report(synced)
    assert body["reps"] and body["definitions"] == "docs/coaching.md"
    calls = {(c["source_id"], r["rep"]["name"]): c for r in body["reps"] for c in r["calls"]}
    checked = 0
    for call in _sample("extensiveCalls"):
        call_id = (call.get("metaData") or {}).get("id")
        if not call_id or not isinstance(call.get("interaction"), dict):
            continue  # the sample's deliberately broken records are dead letters
        for party in call.get("parties") or []:
            key = (call_id, party.get("name"))
            if party.get("affiliation") != "Internal" or key not in calls:
                continue
            row = calls[key]
            assert row["metrics"]["talk_ratio"] == pytest.approx(
                _expected_talk_ratio(call_id, party["speakerId"]), abs=1e-4)
            assert row["metrics"]["minutes"] == pytest.approx(call["metaData"]["duration"] / 60, abs=1e-3)
            stats = {s["name"]: s["value"] for s in call["interaction"]["interactionStats"]}
            assert row["gong"]["talk_ratio"] == stats["Talk Ratio"]  # Gong's own, beside ours
            assert row["gong"]["questions"]["company"] == call["interaction"]["questions"]["companyCount"]
            assert row["metrics"]["topics"]["source"] == "gong_segments" and row["metrics"]["topics"]["main"]
            checked += 1
    assert checked >= 5
    for rep in body["reps"]:
        avg = rep["averages"]
        assert avg["calls"] == len(rep["calls"])
        ratios = [c["metrics"]["talk_ratio"] for c in rep["calls"] if c["metrics"]["talk_ratio"] is not None]
        assert avg["ours"]["talk_ratio"] == pytest.approx(sum(ratios) / len(ratios), abs=1e-4)
        assert avg["gong"]["talk_ratio"] is not None


def test_coaching_report_for_one_rep_and_a_window(synced):
    everyone = coaching_report.report(synced)
    rep = max(everyone["reps"], key=lambda r: len(r["calls"]))
    rep_id = rep["rep"]["id"]
    assert rep_id, "the rep's Gong party resolved to a person"
    mine = coaching_report.report(synced, rep_id)
    assert [r["rep"]["id"] for r in mine["reps"]] == [rep_id]
    assert [c["interaction_id"] for c in mine["reps"][0]["calls"]] == [c["interaction_id"] for c in rep["calls"]]
    first = min(c["occurred_at"] for c in rep["calls"])
    start = dt.datetime.fromisoformat(first) + dt.timedelta(seconds=1)
    later = coaching_report.report(synced, rep_id, start=start)
    got = later["reps"][0]["calls"] if later["reps"] else []
    assert len(got) == len(rep["calls"]) - 1 and all(c["occurred_at"] > first for c in got)
    empty = coaching_report.report(synced, rep_id, start=dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert empty["reps"] == []
    with pytest.raises(services.NotFound):
        coaching_report.report(synced, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(services.BadRequest):
        coaching_report.report(synced, "not-a-uuid")


def test_an_unreachable_cache_does_not_stop_answers(synced):
    from tests.conftest import free_port

    no_redis = settings_mod._replace(synced, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    got = nlquery.answer(no_redis, "virtual card rebates", limit=2, now=NOW)
    assert got["cached"] is False and len(got["citations"]) == 2


def test_without_a_vector_store_full_text_still_answers(synced):
    no_vectors = settings_mod._replace(synced, vector_store="weaviate")  # not built: the store is unavailable
    got = nlquery.answer(no_vectors, "virtual card rebates on salesforce", limit=3, now=NOW, use_cache=False)
    assert "unavailable" in got["semantic_search"]
    assert len(got["citations"]) == 3
    # the search function's keyword side (and the full-text top-up) answer under the same filters
    assert all(c["retrieval"] in ("keyword", "filters") and c["source"] == "salesforce" for c in got["citations"])
    assert all("rebates" in line.lower() for line in got["answer"].splitlines())
