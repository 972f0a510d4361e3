"""Hybrid search against real Postgres + pgvector and the real local model: meaning, keywords,
fusion, filters, context of each hit, and the keyword side alone when pgvector is missing."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from api import services
from common import db
from common.cli import migrate
from embed_worker import pipeline
from embed_worker.search import keyword_ranking, search
from embed_worker.stores import SearchFilters
from tests.conftest import drop_domain, make_settings
from tests.integration.chunk_seed import add_interaction, add_person, chunk_ids

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)

DOCS = {
    "pricing_note": dict(source="hubspot", kind="note", occurred_at=T0, url="https://app.hubspot.com/n/1",
                         body="Dana Okafor asked for a renewal discount: the price per seat for 200 seats "
                              "and a three-year contract term instead of annual billing."),
    "pricing_call": dict(source="gong", kind="call", occurred_at=T0 + dt.timedelta(days=3),
                         url="https://app.gong.io/call?id=9", body="",
                         turns=[{"text": "What would the yearly cost be if we commit for longer?",
                                 "speaker_name": "Ines Ruiz", "start_ms": 61_000},
                                {"text": "A multi-year agreement lowers the price by about ten percent.",
                                 "speaker_name": "Sam Lee", "start_ms": 70_000}]),
    "firmware": dict(source="slack", kind="thread", occurred_at=T0 + dt.timedelta(days=10),
                     body="Heads up: the device update rolls out on Friday after QA signs off on the battery "
                          "drain fix; our internal reference for it is ZX-9047, the rest of the week is for "
                          "planning the offsite and reviewing hiring plans."),
    "lunch": dict(source="salesforce", kind="note", occurred_at=T0 + dt.timedelta(days=20),
                  body="Team lunch moved to the Italian place on Elm street; bring umbrellas, rain expected."),
    "hiking": dict(source="slack", kind="thread", occurred_at=T0 + dt.timedelta(days=25),
                   body="Weekend hiking trip: the trail to the lake is muddy, wear boots."),
    # semantically nearer to a bare code or surname than the passages that contain them
    "order": dict(source="slack", kind="thread", occurred_at=T0 + dt.timedelta(days=30),
                  body="Order ZX-9470 was shipped."),
    "onboarding": dict(source="slack", kind="thread", occurred_at=T0 + dt.timedelta(days=31),
                       body="Chidi Okoro from Lagos joined the call about onboarding."),
    "deleted": dict(source="hubspot", kind="note", occurred_at=T0, body="Pricing and contract terms: secret draft."),
}


@pytest.fixture(scope="module")
def corpus(domain):
    ids = {name: add_interaction(domain, source_id=name, **doc) for name, doc in DOCS.items()}
    person = add_person(domain, "Dana Okafor", "dana@acme.example", [ids["pricing_note"]])
    stats = pipeline.embed_pending(domain)
    assert stats.chunks >= len(DOCS) and not stats.unavailable
    with db.transaction(domain) as conn:
        conn.execute(sa.text("UPDATE interactions SET deleted = true WHERE id = :i"), {"i": ids["deleted"]})
    return domain, ids, person


def _names(hits, ids):
    by_id = {v: k for k, v in ids.items()}
    return [by_id[h.interaction_id] for h in hits]


def test_semantic_search_returns_the_right_passages_with_context(corpus):
    settings, ids, person = corpus
    hits = search(settings, "how much will it cost if we sign a longer agreement?", k=3)
    names = _names(hits, ids)
    assert set(names[:2]) == {"pricing_note", "pricing_call"}
    assert "deleted" not in names
    call = next(h for h in hits if h.interaction_id == ids["pricing_call"])
    assert "vector" in call.matched_by and call.score > 0.3
    assert call.source == "gong" and call.kind == "call" and call.url == "https://app.gong.io/call?id=9"
    assert call.occurred_at == (T0 + dt.timedelta(days=3)).isoformat()
    assert "[01:01] Ines Ruiz:" in call.text and call.speakers == ["Ines Ruiz", "Sam Lee"]
    assert call.start_ms == 61_000 and call.source_id == "pricing_call"
    note = next(h for h in hits if h.interaction_id == ids["pricing_note"])
    assert note.persons == [{"id": person, "name": "Dana Okafor", "email": "dana@acme.example"}]


@pytest.mark.parametrize("query, passage, decoy", [("ZX-9047", "firmware", "order"),
                                                   ("Okafor", "pricing_note", "onboarding")])
def test_codes_and_names_found_by_keyword_where_meaning_misses(corpus, query, passage, decoy):
    settings, ids, _ = corpus
    with db.transaction(settings) as conn:
        assert keyword_ranking(conn, query, SearchFilters(), 10)[0] == chunk_ids(settings, ids[passage])[0]
    semantic_only = search(settings, query, k=1, keyword=False)
    assert _names(semantic_only, ids) == [decoy]  # the model alone prefers the look-alike
    hybrid = search(settings, query, k=3)
    assert _names(hybrid, ids)[0] == passage and hybrid[0].matched_by == ["vector", "keyword"]


def test_fusion_ranks_a_passage_found_by_both_first(corpus):
    settings, ids, _ = corpus
    hits = search(settings, "Okafor renewal discount", k=5)
    assert _names(hits, ids)[0] == "pricing_note"
    assert hits[0].matched_by == ["vector", "keyword"]
    assert all(h.matched_by == ["vector"] for h in hits[1:])  # nothing else says "Okafor"
    assert hits[0].rank_score > hits[1].rank_score


def test_filters(corpus):
    settings, ids, person = corpus
    q = "pricing and contract terms"
    assert {h.source for h in search(settings, q, k=10, sources=["slack"])} == {"slack"}
    assert {h.kind for h in search(settings, q, k=10, kinds=["call"])} == {"call"}
    assert _names(search(settings, q, k=10, entity_id=person), ids) == ["pricing_note"]
    window = search(settings, q, k=10, since=T0 + dt.timedelta(days=3), until=T0 + dt.timedelta(days=20))
    assert set(_names(window, ids)) == {"pricing_call", "firmware"}
    assert search(settings, q, k=10, entity_id=str(uuid.uuid4())) == []


def test_bad_input_is_a_clear_error(corpus):
    settings = corpus[0]
    with pytest.raises(ValueError, match="empty"):
        search(settings, "   ")
    with pytest.raises(services.BadRequest, match="UUID"):
        services.search(settings, "x", entity_id="nope")


def test_services_search_delegates_and_keeps_its_shape(corpus):
    settings, ids, _ = corpus
    out = services.search(settings, "pricing and contract terms", k=2)
    assert len(out) == 2
    for key in ("chunk_id", "text", "score", "interaction_id", "source", "source_type", "source_id", "kind",
                "title", "occurred_at", "url", "speakers", "start_ms", "persons", "companies"):
        assert key in out[0]
    assert services.search(settings, "pricing", k=3, sources=["gong"])[0]["source"] == "gong"


def test_without_pgvector_keyword_side_answers_and_says_why(stack_urls):
    settings = make_settings(stack_urls, f"nv_{uuid.uuid4().hex[:8]}")
    migrate(settings)
    try:
        with db.transaction(settings) as conn:  # a Postgres without pgvector has no chunk_vectors
            conn.execute(sa.text("DROP TABLE chunk_vectors"))
        add_interaction(settings, source="slack", source_id="x", kind="thread", occurred_at=T0,
                        body="Order ZX-9047 shipped today.")
        stats = pipeline.embed_pending(settings)
        assert stats.chunks == 0 and "pgvector is not available" in stats.unavailable
        hits = search(settings, "ZX-9047", k=3)
        assert [h.matched_by for h in hits] == [["keyword"]]
        assert "pgvector is not available" in hits.unavailable
    finally:
        drop_domain(settings)


def test_common_words_are_left_to_the_vector_side(corpus, monkeypatch):
    settings, ids, _ = corpus
    from embed_worker import search as search_mod

    with db.transaction(settings) as conn:
        both = keyword_ranking(conn, "Okafor ZX-9047", SearchFilters(), 10)
        assert set(both) == set(chunk_ids(settings, ids["pricing_note"]) + chunk_ids(settings, ids["firmware"]))
        monkeypatch.setattr(search_mod, "COMMON_WORD_CHUNKS", 1)  # every word found once is now "common"
        assert keyword_ranking(conn, "Okafor ZX-9047", SearchFilters(), 10) == []
        monkeypatch.setattr(search_mod, "COMMON_WORD_CHUNKS", 2)
        assert keyword_ranking(conn, "Okafor ZX-9047", SearchFilters(), 10) == both
