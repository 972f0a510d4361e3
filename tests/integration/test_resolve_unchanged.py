"""A routine resolve run with nothing to resolve (no new or changed identity, no new manual decision,
the same rules) skips matching and only links the interactions the ingest queued; anything that
could change a mapping makes the next run match again. And a run never marks resolved an identity
the ingest rewrote while it ran. Real Postgres and Redis; the world is a real ingest."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from common import db
from ingest_worker import upserts
from resolve_worker import entities, manual, matching
from tests.integration.test_links import SOURCES, _derived_from_scratch, _ingested, _links, _queued
from tests.integration.test_resolve import add_identity, entity

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(stack_urls, tmp_path_factory):
    yield from _ingested(stack_urls, tmp_path_factory, "t_unchanged", SOURCES[:2])


def _one(settings, sql: str, **params):
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql), params).first()


def _mappings(settings) -> set:
    with db.transaction(settings) as conn:
        return set(conn.execute(sa.text("SELECT source, source_type, source_id, entity_id::text, confidence, "
                                        "method FROM entity_mappings")).all())


def test_a_run_with_nothing_to_resolve_only_links_what_the_ingest_queued(world):
    settings = world
    entities.resolve_all(settings)
    before = _mappings(settings)
    # an interaction whose links are gone, queued as the ingest writer queues what it writes
    interaction = _one(settings, "SELECT interaction_id FROM interaction_entities ORDER BY 1 LIMIT 1")[0]
    with db.transaction(settings) as conn:
        conn.execute(sa.text("DELETE FROM interaction_entities WHERE interaction_id = :i"), {"i": interaction})
        upserts.queue_for_linking(conn, [interaction])

    stats = entities.resolve_all(settings)

    assert stats.unchanged and not stats.full
    assert list(stats.phases) == ["check", "links", "commit", "caches"]
    assert _queued(settings) == 0
    with db.transaction(settings) as conn:
        assert _links(conn) == _derived_from_scratch(settings)  # the queued interaction is linked again
    assert stats.timelines_invalidated > 0  # its entities' cached timelines are stale
    assert _mappings(settings) == before
    counts = _one(settings, "SELECT count(*), count(DISTINCT entity_id) FILTER (WHERE entity_type = 'person'), "
                            "count(DISTINCT entity_id) FILTER (WHERE entity_type = 'company') FROM entity_mappings")
    assert (stats.identities, stats.persons, stats.companies) == tuple(counts)


def _new_identity(settings) -> None:
    add_identity(settings, "hubspot", "contacts", "new1", name="Noor Aldana", emails=["noor.aldana@zenith.example"])


def _changed_identity(settings) -> None:
    with db.transaction(settings) as conn:  # what the ingest writer does when a source record changes
        conn.execute(sa.text("UPDATE source_identities SET title = 'VP Revenue', resolved = false WHERE "
                             "(source, source_type, source_id) = (SELECT source, source_type, source_id FROM "
                             "source_identities WHERE entity_type = 'person' ORDER BY 1, 2, 3 LIMIT 1)"))


def _identity_without_mapping(settings) -> None:
    with db.transaction(settings) as conn:  # resolved, yet no mapping (a mapping deleted by hand)
        conn.execute(sa.text("DELETE FROM entity_mappings WHERE (source, source_type, source_id) = (SELECT source, "
                             "source_type, source_id FROM entity_mappings WHERE entity_type = 'person' "
                             "ORDER BY 1, 2, 3 LIMIT 1)"))


def _decision_taken_elsewhere(settings) -> None:
    """A manual decision recorded by another process whose own run has not happened (or failed)."""
    a, b = (r[0] for r in _all(settings, "SELECT DISTINCT entity_id::text FROM entity_mappings "
                                         "WHERE entity_type = 'person' ORDER BY 1 LIMIT 2"))
    with db.transaction(settings) as conn:
        manual._record(conn, "merge", "person", a, manual._members(conn, a)[1] + manual._members(conn, b)[1])


def _all(settings, sql: str, **params) -> list:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql), params).all()


@pytest.mark.parametrize("change", [_new_identity, _changed_identity, _identity_without_mapping,
                                    _decision_taken_elsewhere])
def test_anything_that_could_change_a_mapping_makes_the_next_run_match(world, change):
    settings = world
    entities.resolve_all(settings)
    assert entities.resolve_all(settings).unchanged
    change(settings)
    stats = entities.resolve_all(settings)
    assert not stats.unchanged and "match" in stats.phases
    assert entities.resolve_all(settings).unchanged  # and once matched, there is nothing left to do
    unmapped = _one(settings, "SELECT count(*) FROM source_identities si WHERE entity_type IN ('person', 'company') "
                              "AND NOT EXISTS (SELECT 1 FROM entity_mappings em WHERE (em.source, em.source_type, "
                              "em.source_id) = (si.source, si.source_type, si.source_id))")[0]
    assert unmapped == 0


def test_the_decision_a_run_finds_unapplied_is_applied(world):
    settings = world
    entities.resolve_all(settings)
    _decision_taken_elsewhere(settings)
    entities.resolve_all(settings)
    with db.transaction(settings) as conn:
        keys = conn.execute(sa.text("SELECT identity_keys FROM entity_overrides ORDER BY id DESC LIMIT 1")).scalar()
    assert len({entity(settings, *key) for key in keys}) == 1


def test_other_rules_make_the_next_run_full(world, monkeypatch):
    settings = world
    entities.resolve_all(settings)
    monkeypatch.setattr(matching, "RULES_VERSION", "a-later-rule")
    stats = entities.resolve_all(settings)
    assert stats.full and not stats.unchanged
    assert entities.resolve_all(settings).unchanged


def test_an_identity_the_ingest_rewrites_during_a_run_is_scored_by_the_next(world, monkeypatch):
    """The run loaded the identity's old values; marking it resolved at the end would leave its new
    values unscored by every later routine run (only a full run would see them)."""
    settings = world
    add_identity(settings, "gong", "parties", "yq1", name="Yara Quill", emails=["yara.quill@initech.example"])
    entities.resolve_all(settings)
    add_identity(settings, "slack", "users", "yq2", name="Yara Quill")  # a bare name: not enough to join her
    real_resolve = matching.resolve

    def resolve_while_the_ingest_writes(rows, **kwargs):
        with db.engine_for(settings).begin() as other:  # the ingest writer, committing mid-run
            other.execute(sa.text("UPDATE source_identities SET emails = '[\"yara.quill@initech.example\"]', "
                                  "resolved = false WHERE source = 'slack' AND source_id = 'yq2'"))
        return real_resolve(rows, **kwargs)

    monkeypatch.setattr(matching, "resolve", resolve_while_the_ingest_writes)
    entities.resolve_all(settings)
    monkeypatch.setattr(matching, "resolve", real_resolve)
    assert entity(settings, "gong", "parties", "yq1") != entity(settings, "slack", "users", "yq2")
    assert _one(settings, "SELECT resolved FROM source_identities WHERE source = 'slack' AND source_id = 'yq2'")[0] \
        is False

    stats = entities.resolve_all(settings)

    assert not stats.unchanged
    assert entity(settings, "gong", "parties", "yq1") == entity(settings, "slack", "users", "yq2")
