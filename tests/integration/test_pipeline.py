"""The phases called directly against real Postgres on the bundled sample: counts add up,
re-delivery changes nothing, partial interactions merge, resolution links across sources."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import sqlalchemy as sa

from common import db, runs
from embed_worker import pipeline as embed
from ingest_worker import pipeline as ingest
from ingest_worker.generate import SAMPLE_DIR
from resolve_worker import entities

SOURCES = ("gong", "slack", "hubspot", "salesforce")


def _landed_records() -> Counter:
    counts: Counter = Counter()
    for path in SAMPLE_DIR.glob("*/*.jsonl"):
        for line in path.open():
            if json.loads(line).get("type") == "RECORD":
                counts[path.parent.name] += 1
    return counts


def _scalar(settings, sql: str, **params):
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql), params).scalar()


@pytest.fixture(scope="module")
def synced(domain):
    run = runs.start_run(domain, list(SOURCES), trigger="test")
    totals = {s: ingest.process_source(domain, s, run.run_id) for s in SOURCES}
    resolved = entities.resolve_all(domain)
    embedded = embed.embed_pending(domain)
    runs.finish_run(domain, run.run_id)
    return domain, run.run_id, totals, resolved, embedded


def test_every_record_is_processed_or_dead_lettered(synced):
    settings, run_id, totals, _, _ = synced
    landed = _landed_records()
    run = runs.get_run(settings, run_id)
    for source in SOURCES:
        counts = run["sources"][source]
        assert counts["in"] == landed[source] > 0
        assert counts["in"] == counts["processed"] + counts["dead_lettered"]
        assert totals[source].records_in == counts["in"]
    dead = _scalar(settings, "SELECT count(*) FROM dead_letters")
    assert dead == sum(c["dead_lettered"] for c in run["sources"].values()) > 0


def test_interactions_match_the_landing(synced):
    settings = synced[0]
    expected = set()
    for stream in ("extensiveCalls",):
        for line in (SAMPLE_DIR / "gong" / f"{stream}.jsonl").open():
            msg = json.loads(line)
            if msg.get("type") == "RECORD" and (msg["record"]["data"].get("id") or
                                                (msg["record"]["data"].get("metaData") or {}).get("id")):
                data = msg["record"]["data"]
                expected.add(str(data.get("id") or data["metaData"]["id"]))
    stored = set(_rows(settings, "SELECT source_id FROM interactions WHERE source = 'gong'"))
    assert stored == expected
    hubspot = 0
    for stream in ("engagements_notes", "engagements_calls", "engagements_emails", "engagements_meetings"):
        ids = {json.loads(l)["record"]["data"].get("id") for l in (SAMPLE_DIR / "hubspot" / f"{stream}.jsonl").open()
               if json.loads(l).get("type") == "RECORD"}
        ids.discard(None)
        hubspot += len(ids)
    assert _scalar(settings, "SELECT count(*) FROM interactions WHERE source = 'hubspot'") == hubspot


def _rows(settings, sql: str) -> list:
    with db.transaction(settings) as conn:
        return [r[0] for r in conn.execute(sa.text(sql))]


def test_gong_transcripts_merge_into_their_calls(synced):
    settings = synced[0]
    with_turns = _scalar(settings, "SELECT count(DISTINCT interaction_id) FROM interaction_turns t "
                                   "JOIN interactions i ON i.id = t.interaction_id WHERE i.source = 'gong'")
    calls_with_title = _scalar(settings, "SELECT count(*) FROM interactions WHERE source = 'gong' "
                                         "AND title IS NOT NULL AND occurred_at IS NOT NULL")
    assert with_turns > 0 and calls_with_title == _scalar(settings, "SELECT count(*) FROM interactions WHERE source='gong'")
    named = _scalar(settings, "SELECT count(*) FROM chunks c JOIN interactions i ON i.id = c.interaction_id "
                              "WHERE i.source = 'gong' AND c.text ~ '^\\[\\d\\d:\\d\\d\\] [A-Z][a-z]+'")
    assert named > 0, "gong chunks carry speaker names joined from the call's parties"


def test_redelivery_changes_nothing(synced):
    settings = synced[0]
    before = {t: _scalar(settings, f"SELECT count(*) FROM {t}") for t in
              ("interactions", "interaction_turns", "participants", "chunks", "dead_letters", "entity_mappings")}
    hashes = _scalar(settings, "SELECT md5(string_agg(content_hash, ',' ORDER BY id)) FROM chunks")
    ingest.reset_checkpoints(settings, list(SOURCES))  # Airbyte re-delivers everything
    run = runs.start_run(settings, list(SOURCES), trigger="test")
    for s in SOURCES:
        ingest.process_source(settings, s, run.run_id)
    entities.resolve_all(settings)
    again = embed.embed_pending(settings)
    runs.finish_run(settings, run.run_id)
    after = {t: _scalar(settings, f"SELECT count(*) FROM {t}") for t in before}
    assert after == before
    assert _scalar(settings, "SELECT md5(string_agg(content_hash, ',' ORDER BY id)) FROM chunks") == hashes
    assert again.chunks == 0, "unchanged text is never embedded twice"


def test_every_chunk_is_embedded_once(synced):
    settings, _, _, _, embedded = synced
    if embedded.unavailable:
        pytest.skip(embedded.unavailable)
    chunks = _scalar(settings, "SELECT count(*) FROM chunks")
    assert embedded.chunks == chunks == _scalar(settings, "SELECT count(*) FROM chunk_vectors")
    assert _scalar(settings, "SELECT count(*) FROM chunks WHERE embedded_hash IS DISTINCT FROM content_hash") == 0


def test_persons_link_across_sources_by_email(synced):
    settings = synced[0]
    multi = _scalar(settings, "SELECT count(*) FROM (SELECT entity_id FROM entity_mappings WHERE entity_type='person' "
                              "GROUP BY entity_id HAVING count(DISTINCT source) >= 3) x")
    assert multi > 0
    # timeline rows exist for companies through their people
    linked = _scalar(settings, "SELECT count(DISTINCT interaction_id) FROM interaction_entities WHERE entity_type='company'")
    assert linked > 0


def test_ground_truth_never_merges_different_people(synced):
    """The exact rules must be precise: no entity holds identities of two real persons."""
    settings = synced[0]
    truth = {}
    for line in (SAMPLE_DIR / "ground_truth.jsonl").open():
        t = json.loads(line)
        truth[(t["source"], t["source_type"], str(t["source_id"]))] = t["truth_id"]
    with db.transaction(settings) as conn:
        rows = conn.execute(sa.text("SELECT source, source_type, source_id, entity_id FROM entity_mappings "
                                    "WHERE entity_type = 'person'")).all()
    members: dict = {}
    for r in rows:
        key = (r.source, r.source_type, r.source_id)
        if key in truth:
            members.setdefault(r.entity_id, set()).add(truth[key])
    impure = {e: t for e, t in members.items() if len(t) > 1}
    assert not impure


def test_run_fence_is_a_database_constraint(domain):
    first = runs.start_run(domain, ["gong"], trigger="test")
    second = runs.start_run(domain, ["gong", "slack"], trigger="test")
    assert first.created and not second.created and second.run_id == first.run_id
    with pytest.raises(sa.exc.IntegrityError):
        with db.transaction(domain) as conn:
            conn.execute(sa.text("INSERT INTO sync_runs (id) VALUES (gen_random_uuid())"))
            conn.execute(sa.text("INSERT INTO sync_run_sources (run_id, source, status) "
                                 "SELECT id, 'gong', 'running' FROM sync_runs ORDER BY created_at DESC LIMIT 1"))
    runs.fail_run(domain, first.run_id, "test over")
    assert runs.start_run(domain, ["gong"], trigger="test").created
