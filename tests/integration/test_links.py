"""Routine resolve runs re-derive only the interactions whose links may have changed (queued by the
writer, named by a remapped identity, or linked to an entity whose head changed); after every kind
of change the links must be exactly what re-deriving every interaction gives."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from common import db
from ingest_worker import pipeline, upserts
from ingest_worker.generate import generate
from resolve_worker import entities, links, manual
from tests.integration.test_heads_scope import heads_a_full_recomputation_would_change

pytestmark = pytest.mark.integration

SOURCES = ("gong", "slack", "hubspot", "salesforce")


def _ingested(stack_urls, tmp_path_factory, name: str, sources: tuple[str, ...]):
    from common.cli import migrate
    from tests.conftest import activate, drop_domain, make_settings

    landing = tmp_path_factory.mktemp("landing")
    generate(landing, scale=2, seed=5)
    settings = make_settings(stack_urls, name, landing_dir=landing)
    activate(settings)
    migrate(settings)
    for source in sources:
        pipeline.process_source(settings, source, None)
    yield settings
    drop_domain(settings)


@pytest.fixture(scope="module")
def world(stack_urls, tmp_path_factory):
    yield from _ingested(stack_urls, tmp_path_factory, "t_links", SOURCES[:2])


@pytest.fixture(scope="module")
def every_source(stack_urls, tmp_path_factory):
    yield from _ingested(stack_urls, tmp_path_factory, "t_links_all", SOURCES)


def _links(conn: sa.engine.Connection) -> set:
    return set(conn.execute(sa.text(
        "SELECT entity_id::text, interaction_id, entity_type, occurred_at FROM interaction_entities")).all())


def _queued(settings) -> int:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text("SELECT count(*) FROM interactions_to_link")).scalar()


def _derived_from_scratch(settings) -> set:
    """What re-deriving every interaction gives (the full run's path), rolled back."""
    engine = db.engine_for(settings)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            links.link(conn, True, [], [])
            return _links(conn)
        finally:
            transaction.rollback()


def _routine_run_matches_full_derivation(settings) -> set:
    stats = entities.resolve_all(settings)
    assert _queued(settings) == 0, "a run takes the whole queue"
    with db.transaction(settings) as conn:
        routine = _links(conn)
    assert routine == _derived_from_scratch(settings)
    assert stats.links == len(routine)
    assert heads_a_full_recomputation_would_change(settings) == set()  # heads are computed by scope too
    return routine


def _one(settings, sql: str, **params) -> object:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql), params).first()


def test_routine_runs_keep_the_links_a_full_derivation_gives(world):
    settings = world
    first = _routine_run_matches_full_derivation(settings)
    assert len(first) > 100

    # the other two sources arrive: new identities, new interactions, new company associations
    for source in SOURCES[2:]:
        pipeline.process_source(settings, source, None)
    assert _queued(settings) > 0
    _routine_run_matches_full_derivation(settings)

    # a participant now names another identity; an interaction moves in time; a company is
    # associated with a stored interaction; a turn's speaker is dropped; a participant is deleted
    # (each interaction queued, as the ingest writer queues what it writes)
    iid, key = _one(settings, "SELECT p.interaction_id, p.participant_key FROM participants p "
                              "WHERE p.source_id IS NOT NULL ORDER BY 1, 2 LIMIT 1")
    other = _one(settings, "SELECT source_type, source_id FROM participants WHERE source_id IS NOT NULL "
                           "AND interaction_id <> :i ORDER BY interaction_id DESC LIMIT 1", i=iid)
    with db.transaction(settings) as conn:
        touched = [iid]
        conn.execute(sa.text("UPDATE participants SET source_type = :t, source_id = :s "
                             "WHERE interaction_id = :i AND participant_key = :k"),
                     {"t": other[0], "s": other[1], "i": iid, "k": key})
        touched.extend(conn.execute(sa.text(
            "UPDATE interactions SET occurred_at = occurred_at - interval '3 days' "
            "WHERE id = (SELECT max(interaction_id) FROM interaction_entities) RETURNING id")).scalars())
        company = conn.execute(sa.text("SELECT source_type, source_id FROM entity_mappings "
                                       "WHERE entity_type = 'company' AND source = 'hubspot' LIMIT 1")).first()
        touched.extend(conn.execute(sa.text(
            "INSERT INTO interaction_companies (interaction_id, source_type, source_id) "
            "SELECT id, :t, :s FROM interactions WHERE source = 'hubspot' ORDER BY id LIMIT 1 ON CONFLICT DO NOTHING "
            "RETURNING interaction_id"), {"t": company[0], "s": company[1]}).scalars())
        touched.extend(conn.execute(sa.text(
            "UPDATE interaction_turns SET speaker_source_id = NULL WHERE (interaction_id, turn_key) = "
            "(SELECT interaction_id, turn_key FROM interaction_turns WHERE speaker_source_id IS NOT NULL "
            "ORDER BY 1, 2 LIMIT 1) RETURNING interaction_id")).scalars())
        touched.extend(conn.execute(sa.text(
            "DELETE FROM participants WHERE (interaction_id, participant_key) = (SELECT interaction_id, "
            "participant_key FROM participants ORDER BY 1 DESC, 2 LIMIT 1) RETURNING interaction_id")).scalars())
        upserts.queue_for_linking(conn, touched)
    _routine_run_matches_full_derivation(settings)

    # a merge and a split move identities between entities (no interaction row is written)
    a, b = [r[0] for r in _all(settings, "SELECT entity_id::text FROM interaction_entities "
                                          "WHERE entity_type = 'person' GROUP BY 1 ORDER BY count(*) DESC LIMIT 2")]
    manual.merge(settings, a, b)
    assert _queued(settings) == 0
    _routine_run_matches_full_derivation(settings)
    members = [tuple(r) for r in _all(settings, "SELECT source, source_type, source_id FROM entity_mappings "
                                                 "WHERE entity_id = CAST(:e AS uuid) ORDER BY 1, 2, 3", e=a)]
    manual.split(settings, a, members[:1])
    _routine_run_matches_full_derivation(settings)

    # a person's company changes (their identity's employer moves): their interactions' company links follow
    person = _one(settings, "SELECT p.id::text FROM persons p JOIN interaction_entities ie ON ie.entity_id = p.id "
                            "WHERE p.company_id IS NOT NULL AND NOT p.is_internal LIMIT 1")[0]
    with db.transaction(settings) as conn:
        conn.execute(sa.text(
            "UPDATE source_identities si SET company_source_type = NULL, company_source_id = NULL, emails = '[]', "
            "company_name = NULL, resolved = false FROM entity_mappings em WHERE em.entity_id = CAST(:p AS uuid) "
            "AND (si.source, si.source_type, si.source_id) = (em.source, em.source_type, em.source_id)"), {"p": person})
    _routine_run_matches_full_derivation(settings)
    assert _one(settings, "SELECT company_id FROM persons WHERE id = CAST(:p AS uuid)", p=person)[0] is None


def _all(settings, sql: str, **params) -> list:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql), params).all()


def test_the_writer_queues_every_interaction_it_writes_even_unchanged(world):
    settings = world
    entities.resolve_all(settings)
    with db.transaction(settings) as conn:
        conn.execute(sa.text("UPDATE sync_state SET cursor_offset = 0 WHERE source = 'gong'"))  # re-deliver
    pipeline.process_source(settings, "gong", None)
    assert _one(settings, "SELECT count(*) FROM interactions i WHERE i.source = 'gong' AND NOT EXISTS "
                          "(SELECT 1 FROM interactions_to_link q WHERE q.interaction_id = i.id) AND EXISTS "
                          "(SELECT 1 FROM participants p WHERE p.interaction_id = i.id)")[0] == 0
    assert _queued(settings) > 10
    _routine_run_matches_full_derivation(settings)


def test_a_full_run_takes_the_queue_and_rederives_everything(world):
    settings = world
    with db.transaction(settings) as conn:
        conn.execute(sa.text("DELETE FROM interaction_entities WHERE interaction_id IN "
                             "(SELECT interaction_id FROM interaction_entities ORDER BY 1 LIMIT 5)"))
        conn.execute(sa.text("INSERT INTO interactions_to_link SELECT id FROM interactions ORDER BY id LIMIT 3 "
                             "ON CONFLICT DO NOTHING"))
    entities.resolve_all(settings, full=True)  # repairs links no queue named
    assert _queued(settings) == 0
    with db.transaction(settings) as conn:
        assert _links(conn) == _derived_from_scratch(settings)


def test_a_first_run_fills_the_empty_table_with_what_a_full_derivation_gives(every_source):
    """The first run inserts into an empty table without comparing (links.py); it must still give
    every person and company link, persons' companies included, each once."""
    first = _routine_run_matches_full_derivation(every_source)
    assert {entity_type for _, _, entity_type, _ in first} == {"person", "company"}
    assert _one(every_source, "SELECT count(*) FROM interaction_entities ie JOIN persons p ON "
                              "p.company_id = ie.entity_id JOIN interaction_entities pe ON pe.entity_id = p.id "
                              "AND pe.interaction_id = ie.interaction_id")[0] > 0


def test_a_pinned_identity_takes_its_links_to_the_entity_it_is_pinned_to(world):
    """The run a pin starts moves the identity's mapping; its interactions are re-derived even
    when the head of the entity it leaves does not change (a twin of it stays behind)."""
    settings = world
    entities.resolve_all(settings)
    twin = _one(settings, """
        SELECT em.source, em.source_type, em.source_id, em.entity_id::text FROM entity_mappings em
          JOIN source_identities si USING (source, source_type, source_id)
         WHERE em.entity_type = 'person' AND EXISTS (SELECT 1 FROM participants p JOIN interactions i
               ON i.id = p.interaction_id WHERE i.source = em.source AND p.source_type = em.source_type
               AND p.source_id = em.source_id)
           AND EXISTS (SELECT 1 FROM entity_mappings o JOIN source_identities so USING (source, source_type, source_id)
               WHERE o.entity_id = em.entity_id AND (o.source, o.source_type, o.source_id) <>
               (em.source, em.source_type, em.source_id) AND so.name = si.name AND so.emails = si.emails)
         ORDER BY 1, 2, 3 LIMIT 1""")
    assert twin is not None, "the generated data has a person with two identical identities"
    key, left = tuple(twin[:3]), twin[3]
    other = _one(settings, "SELECT entity_id::text FROM interaction_entities WHERE entity_type = 'person' "
                           "AND entity_id <> CAST(:e AS uuid) ORDER BY 1 LIMIT 1", e=left)[0]
    manual.pin(settings, key, other)
    with db.transaction(settings) as conn:
        assert _links(conn) == _derived_from_scratch(settings)
