"""Cached timelines go stale exactly when their entity's interactions change: the resolve phase
bumps the entities whose links or heads changed (a run that changes nothing keeps every cached
page), and an ingest batch bumps the entities linked to interactions it changed. Real Postgres and
Redis; the tiers read versions from Redis on every request."""
from __future__ import annotations

import datetime as dt

import pytest
import redis
import sqlalchemy as sa

from common import db, settings as settings_mod
from common.timeline_cache import TimelineTiers
from ingest_worker import pipeline, upserts
from resolve_worker import entities
from tests.integration.test_deletions import _line, _note, _sync
from tests.integration.test_resolve import add_identity, entity

AT = dt.datetime(2026, 3, 2, 10, tzinfo=dt.timezone.utc)


def interaction(settings, source_id: str, *participants: str, at: dt.datetime = AT) -> int:
    with db.transaction(settings) as conn:
        iid = conn.execute(sa.text(
            "INSERT INTO interactions (source, source_type, source_id, kind, occurred_at, title) "
            "VALUES ('gong', 'calls', :sid, 'call', :at, :sid) RETURNING id"), {"sid": source_id, "at": at}).scalar()
        for party in participants:
            conn.execute(sa.text("INSERT INTO participants (interaction_id, participant_key, role, source_type, "
                                 "source_id) VALUES (:i, :p, 'customer', 'parties', :p)"), {"i": iid, "p": party})
        upserts.queue_for_linking(conn, [iid])  # as every writer of interactions does
    return iid


def titles(tiers: TimelineTiers, entity_id: str) -> tuple[list[str], str]:
    page, tier = tiers.page(entity_id, limit=20)
    return [item["title"] for item in page["items"]], tier


@pytest.fixture(scope="module")
def people(domain):
    add_identity(domain, "gong", "parties", "ann", name="Ann Lee", emails=["ann.lee@northwind.com"])
    add_identity(domain, "gong", "parties", "ben", name="Ben Ode", emails=["ben.ode@southwind.com"])
    add_identity(domain, "hubspot", "companies", "nw", entity_type="company", name="Northwind",
                 domains=["northwind.com"])
    interaction(domain, "first call", "ann")
    first = entities.resolve_all(domain)
    return {"ann": entity(domain, "gong", "parties", "ann"), "ben": entity(domain, "gong", "parties", "ben"),
            "northwind": entity(domain, "hubspot", "companies", "nw"), "first": first}


@pytest.fixture()
def tiers(domain):
    client = redis.Redis.from_url(domain.redis_url, decode_responses=True)
    return TimelineTiers(domain, client, listen=False)


def test_a_run_that_changes_nothing_keeps_every_cached_timeline(domain, people, tiers):
    assert people["first"].timelines_invalidated >= 2, "the first run links ann and her company"
    assert titles(tiers, people["ann"]) == (["first call"], "warm")
    assert titles(tiers, people["northwind"])[0] == ["first call"]
    stats = entities.resolve_all(domain)
    assert stats.timelines_invalidated == 0
    assert titles(tiers, people["ann"]) == (["first call"], "hot"), "still the cached page: nothing bumped"


def test_a_new_link_makes_only_its_entities_stale(domain, people, tiers):
    assert titles(tiers, people["ann"])[0] == ["first call"]
    assert titles(tiers, people["ben"])[0] == []
    interaction(domain, "ben's call", "ben", at=AT + dt.timedelta(days=1))
    stats = entities.resolve_all(domain)
    assert stats.timelines_invalidated == 1  # ben; southwind.com names no company we know
    assert titles(tiers, people["ben"]) == (["ben's call"], "warm")
    assert titles(tiers, people["ann"]) == (["first call"], "hot")


def test_a_retimed_or_removed_link_reaches_the_timeline(domain, people, tiers):
    iid = interaction(domain, "second call", "ann", at=AT + dt.timedelta(days=2))
    entities.resolve_all(domain)
    assert titles(tiers, people["ann"])[0] == ["second call", "first call"]
    with db.transaction(domain) as conn:
        conn.execute(sa.text("UPDATE interactions SET occurred_at = :at WHERE id = :i"),
                     {"at": AT - dt.timedelta(days=1), "i": iid})
        upserts.queue_for_linking(conn, [iid])
    stats = entities.resolve_all(domain)
    assert stats.timelines_invalidated == 2  # ann and northwind: the link rows carry the time
    assert titles(tiers, people["ann"]) == (["first call", "second call"], "warm")
    with db.transaction(domain) as conn:
        conn.execute(sa.text("DELETE FROM participants WHERE interaction_id = :i"), {"i": iid})
        upserts.queue_for_linking(conn, [iid])
    entities.resolve_all(domain)
    assert titles(tiers, people["ann"]) == (["first call"], "warm")
    assert titles(tiers, people["northwind"]) == (["first call"], "warm")


def test_a_changed_head_makes_the_entity_stale(domain, people, tiers):
    page, _ = tiers.page(people["ann"], limit=20)
    assert page["entity"]["name"] == "Ann Lee"
    with db.transaction(domain) as conn:
        conn.execute(sa.text("UPDATE source_identities SET name = 'Ann Lee-Park', resolved = false "
                             "WHERE source_id = 'ann'"))
    stats = entities.resolve_all(domain, full=True)
    assert stats.timelines_invalidated >= 1
    page, tier = tiers.page(people["ann"], limit=20)
    assert (page["entity"]["name"], tier) == ("Ann Lee-Park", "warm")


def test_an_ingested_change_to_a_linked_interaction_makes_its_timelines_stale(domain, tmp_path, tiers):
    """The ingest batch that archives a note (or changes its text) invalidates the timelines the note
    is linked to, after its commit: the cached page must not keep showing it."""
    folder = tmp_path / "landing" / "hubspot"
    folder.mkdir(parents=True)
    notes = folder / "engagements_notes.jsonl"
    (folder / "contacts.jsonl").write_text(_line("contacts", {"id": "77", "properties": {
        "email": "dana@acme.example", "firstname": "Dana", "lastname": "Reyes"}}) + "\n")
    notes.write_text(_line("engagements_notes", _note(False)) + "\n")
    settings = settings_mod._replace(domain, landing_dir=tmp_path / "landing")
    _sync(settings)
    dana = entity(settings, "hubspot", "contacts", "77")
    page, _ = tiers.page(dana, limit=20)
    assert [i["source_id"] for i in page["items"]] == ["900"]
    assert tiers.page(dana, limit=20)[1] == "hot"
    with notes.open("a") as fh:
        fh.write(_line("engagements_notes", _note(True)) + "\n")
    pipeline.process_source(settings, "hubspot", None)  # ingest alone: no resolve run afterwards
    page, tier = tiers.page(dana, limit=20)
    assert (page["items"], tier) == ([], "warm")
