"""Entity resolution against real Postgres and Redis: incremental attach, no chaining, overrides kept
across runs, the Redis cache invalidated on merges, interactions linked, evidence and accuracy."""
from __future__ import annotations

import dataclasses
import json

import pytest
import sqlalchemy as sa

from api import services
from common import db, metrics
from ingest_worker import upserts
from resolve_worker import accuracy, cache, entities, manual, matching


def add_identity(settings, source, source_type, source_id, *, name=None, emails=(), entity_type="person",
                 domains=(), phone=None, company_name=None):
    with db.transaction(settings) as conn:
        conn.execute(sa.text(
            "INSERT INTO source_identities (source, source_type, source_id, entity_type, name, emails, domains, "
            "phone, company_name) VALUES (:s, :t, :i, :e, :n, CAST(:em AS jsonb), CAST(:d AS jsonb), :p, :c)"),
            {"s": source, "t": source_type, "i": source_id, "e": entity_type, "n": name,
             "em": json.dumps(list(emails)), "d": json.dumps(list(domains)), "p": phone, "c": company_name})


def entity(settings, source, source_type, source_id):
    with db.transaction(settings) as conn:
        return conn.execute(sa.text("SELECT entity_id::text FROM entity_mappings WHERE source=:s AND "
                                    "source_type=:t AND source_id=:i"),
                            {"s": source, "t": source_type, "i": source_id}).scalar()


@pytest.fixture(scope="module")
def world(domain):
    add_identity(domain, "hubspot", "companies", "c1", entity_type="company", name="Acme, Inc.", domains=["acme.com"])
    add_identity(domain, "salesforce", "Account", "a1", entity_type="company", name="ACME Corporation",
                 domains=["https://www.acme.com/"])
    add_identity(domain, "gong", "parties", "p1", name="Robert Smith", emails=["robert.smith@acme.com"])
    add_identity(domain, "hubspot", "contacts", "h1", name="Bob Smith", emails=["Robert.Smith+crm@ACME.com"],
                 phone="(415) 555-0101", company_name="Acme Inc")
    add_identity(domain, "hubspot", "contacts", "h2", name="Alice Jones", emails=["alice.jones@acme.com"])
    stats = entities.resolve_all(domain)
    return domain, stats


def test_persons_and_companies_unify_across_sources(world):
    settings, stats = world
    assert entity(settings, "hubspot", "companies", "c1") == entity(settings, "salesforce", "Account", "a1")
    assert entity(settings, "gong", "parties", "p1") == entity(settings, "hubspot", "contacts", "h1")
    assert entity(settings, "hubspot", "contacts", "h2") != entity(settings, "hubspot", "contacts", "h1")


def test_new_identity_attaches_incrementally_and_ids_stay(world):
    settings, _ = world
    before = entity(settings, "gong", "parties", "p1")
    add_identity(settings, "slack", "users", "U1", name="Smith, Bob", phone="+1 415 555 0101")
    stats = entities.resolve_all(settings)
    assert entity(settings, "slack", "users", "U1") == before
    assert entity(settings, "gong", "parties", "p1") == before
    assert stats.changed == 1  # only the new identity's mapping was written


def test_a_shared_or_ambiguous_address_never_chains_two_people(world):
    settings, _ = world
    add_identity(settings, "salesforce", "Lead", "L1", name="Carol White", emails=["alice.jones@acme.com"])
    add_identity(settings, "salesforce", "Lead", "L2", name="Dan Brown", emails=["sales@acme.com"])
    add_identity(settings, "gong", "parties", "p9", name="Erin Black", emails=["sales@acme.com"])
    entities.resolve_all(settings)
    alice = entity(settings, "hubspot", "contacts", "h2")
    assert entity(settings, "salesforce", "Lead", "L1") != alice
    assert entity(settings, "salesforce", "Lead", "L2") != entity(settings, "gong", "parties", "p9")


def test_bad_identities_do_not_crash_or_merge(world):
    settings, _ = world
    add_identity(settings, "gong", "parties", "junk1", name="N/A", emails=["not-an-email"])
    add_identity(settings, "gong", "parties", "junk2", name="N/A", emails=["not-an-email"])
    add_identity(settings, "gong", "parties", "junk3", name="\u200b\u0007" + "x" * 5000, emails=["@@"])
    entities.resolve_all(settings)
    assert entity(settings, "gong", "parties", "junk1") != entity(settings, "gong", "parties", "junk2")
    assert entity(settings, "gong", "parties", "junk3") is not None


def test_merge_override_survives_full_rebuild_and_invalidates_cache(world):
    settings, _ = world
    r = cache.client(settings)
    alice = entity(settings, "hubspot", "contacts", "h2")
    carol = entity(settings, "salesforce", "Lead", "L1")
    assert cache.entity_of(settings, ("salesforce", "Lead", "L1"), r) == carol
    assert r.get(f"{settings.key_prefix}entity:salesforce:Lead:L1").decode() == carol
    manual.merge(settings, alice, carol)
    assert r.get(f"{settings.key_prefix}entity:salesforce:Lead:L1") is None  # invalidated
    assert cache.entity_of(settings, ("salesforce", "Lead", "L1"), r) == alice
    entities.resolve_all(settings, full=True)
    assert entity(settings, "salesforce", "Lead", "L1") == entity(settings, "hubspot", "contacts", "h2") == alice
    with db.transaction(settings) as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM persons WHERE id = CAST(:c AS uuid)"), {"c": carol}).scalar() == 0


def test_split_and_pin_are_kept_by_later_runs(world):
    settings, _ = world
    bob = entity(settings, "gong", "parties", "p1")
    out = manual.split(settings, bob, [("slack", "users", "U1")])
    for full in (False, True):
        entities.resolve_all(settings, full=full)
        assert entity(settings, "slack", "users", "U1") == out["entity_id"] != entity(settings, "gong", "parties", "p1")
    alice = entity(settings, "hubspot", "contacts", "h2")
    manual.pin(settings, ("gong", "parties", "p9"), alice)
    entities.resolve_all(settings, full=True)
    assert entity(settings, "gong", "parties", "p9") == alice
    with pytest.raises(manual.OverrideError):
        manual.merge(settings, alice, entity(settings, "hubspot", "companies", "c1"))  # person with company


def test_interactions_link_to_resolved_persons_and_their_company(world):
    settings, _ = world
    with db.transaction(settings) as conn:
        iid = conn.execute(sa.text(
            "INSERT INTO interactions (source, source_type, source_id, kind, occurred_at) "
            "VALUES ('gong', 'calls', 'call1', 'call', now()) RETURNING id")).scalar()
        conn.execute(sa.text("INSERT INTO participants (interaction_id, participant_key, role, source_type, source_id) "
                             "VALUES (:i, 'p1', 'customer', 'parties', 'p1')"), {"i": iid})
        upserts.queue_for_linking(conn, [iid])  # as every writer of interactions does
    entities.resolve_all(settings)
    with db.transaction(settings) as conn:
        linked = {(r.entity_type, r.entity_id) for r in conn.execute(sa.text(
            "SELECT entity_type, entity_id::text FROM interaction_entities WHERE interaction_id = :i"), {"i": iid})}
    assert ("person", entity(settings, "gong", "parties", "p1")) in linked
    assert ("company", entity(settings, "hubspot", "companies", "c1")) in linked


def test_entity_api_shows_the_evidence(world):
    settings, _ = world
    body = services.get_entity(settings, entity(settings, "gong", "parties", "p1"))
    why = {tuple(e["identity"]): e for e in body["evidence"]}
    assert why[("hubspot", "contacts", "h1")]["method"] == "email_exact"
    assert "email=robert.smith@acme.com" in why[("hubspot", "contacts", "h1")]["matched_on"]
    assert 0 < why[("hubspot", "contacts", "h1")]["confidence"] <= 1


def test_accuracy_metric_exports_the_stored_evaluation(domain):
    accuracy.record(domain, {"ours": {"person": {"f1": 0.99}, "company": {"f1": 1.0}}})
    metrics.RESOLUTION_ACCURACY.set(0)
    assert accuracy.export(domain) == pytest.approx(0.995)
    assert metrics.RESOLUTION_ACCURACY._value.get() == pytest.approx(0.995)


def test_an_updated_identity_is_scored_again(world):
    settings, _ = world
    add_identity(settings, "gong", "parties", "z1", name="Zed Quinn", emails=["zed.quinn@initech.com"])
    add_identity(settings, "slack", "users", "z2", name="Zed Quinn")
    entities.resolve_all(settings)
    assert entity(settings, "gong", "parties", "z1") != entity(settings, "slack", "users", "z2")
    with db.transaction(settings) as conn:  # what the ingest writer does when the source record changes
        conn.execute(sa.text("UPDATE source_identities SET emails = '[\"zed.quinn@initech.com\"]', resolved = false "
                             "WHERE source = 'slack' AND source_id = 'z2'"))
    entities.resolve_all(settings)
    assert entity(settings, "gong", "parties", "z1") == entity(settings, "slack", "users", "z2")


def test_demo_summary_shows_entities_unified_across_sources(world):
    from common import demo

    settings, _ = world
    with db.transaction(settings) as conn:
        unified = {u["type"]: u for u in demo._unified_examples(conn)}
    assert {i["source"] for i in unified["person"]["identities"]} >= {"gong", "hubspot"}
    assert {i["source"] for i in unified["company"]["identities"]} == {"hubspot", "salesforce"}
    text = demo.render({"run": {"run_id": "r", "status": "succeeded", "sources": {}},
                        "counts": dict.fromkeys(("interactions", "persons", "companies", "mappings", "chunks",
                                                 "chunks_embedded", "dead_letters"), 0),
                        "timings": {}, "phase_seconds": {}, "unified": list(unified.values())})
    assert "One person across sources" in text and "One company across sources" in text
    assert "domain_exact" in text


def test_the_configured_phone_region_reads_national_numbers(world):
    settings, _ = world
    add_identity(settings, "hubspot", "contacts", "uk1", name="Priya Patel", phone="020 7946 0958")
    add_identity(settings, "salesforce", "Contact", "uk2", name="Priya Patel", phone="+44 20 7946 0958")
    entities.resolve_all(settings)  # US, the default: 020 7946 0958 is no number there, a bare name joins nobody
    assert entity(settings, "hubspot", "contacts", "uk1") != entity(settings, "salesforce", "Contact", "uk2")
    # PAYREADY_DEFAULT_PHONE_REGION=GB set: no new identity, yet the next routine run re-clusters
    # every identity once (a routine run scores only new ones), then routine runs are routine again
    in_gb = dataclasses.replace(settings, default_phone_region="GB")
    assert entities.resolve_all(in_gb).full
    assert entity(settings, "hubspot", "contacts", "uk1") == entity(settings, "salesforce", "Contact", "uk2")
    assert rules_applied(settings) == matching.rules("GB")
    assert not entities.resolve_all(in_gb).full


def rules_applied(settings):
    with db.transaction(settings) as conn:
        return conn.execute(sa.text("SELECT rules FROM resolve_rules_applied")).scalar()


def forget_decisions_applied(settings) -> None:
    """As on a database resolved before 0010: the next routine run matches every identity again
    instead of finding nothing to resolve (what the fixed-point tests need to compare)."""
    with db.transaction(settings) as conn:
        conn.execute(sa.text("UPDATE resolve_rules_applied SET overrides = NULL"))


def test_the_first_run_under_new_rules_re_clusters_every_identity_once(world, monkeypatch):
    settings, _ = world
    entities.resolve_all(settings)  # settle: whatever ran before, the stored rules are now these
    assert not entities.resolve_all(settings).full
    assert rules_applied(settings) == matching.rules(settings.default_phone_region)
    monkeypatch.setattr(matching, "RULES_VERSION", "a-later-rule")
    stats = entities.resolve_all(settings)
    assert stats.full and stats.identities > 0
    assert rules_applied(settings) == matching.rules(settings.default_phone_region) and "a-later-rule" in rules_applied(settings)
    assert not entities.resolve_all(settings).full
    assert entities.resolve_all(settings, full=True).full  # asked for: full whatever the rules


def _staff(settings, person_id: str) -> bool:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text("SELECT is_internal FROM persons WHERE id = CAST(:p AS uuid)"),
                            {"p": person_id}).scalar()


def _mark_identity_internal(settings, source_id: str, internal: bool) -> None:
    """As the ingest writer does when a source's value changes: the identity is resolved again."""
    with db.transaction(settings) as conn:
        conn.execute(sa.text("UPDATE source_identities SET is_internal = :v, resolved = false "
                             "WHERE source = 'gong' AND source_type = 'parties' AND source_id = :i"),
                     {"v": internal, "i": source_id})


def test_a_person_is_staff_while_any_of_their_identities_is_internal(world):
    world, _ = world
    add_identity(world, "gong", "parties", "staff1", name="Wendy Staffer", emails=["wendy.staffer@ourco.example"])
    add_identity(world, "hubspot", "contacts", "staff2", name="Wendy Staffer", emails=["wendy.staffer@ourco.example"])
    add_identity(world, "gong", "parties", "staff3", name="Quentin Newhire", emails=["quentin.newhire@ourco.example"])
    _mark_identity_internal(world, "staff3", True)  # staff from its first run on
    entities.resolve_all(world)
    wendy, quentin = entity(world, "gong", "parties", "staff1"), entity(world, "gong", "parties", "staff3")
    assert wendy == entity(world, "hubspot", "contacts", "staff2")
    assert (_staff(world, wendy), _staff(world, quentin)) == (False, True)

    _mark_identity_internal(world, "staff1", True)  # one of her two identities
    marked = entities.resolve_all(world)
    assert (_staff(world, wendy), _staff(world, quentin)) == (True, True)
    assert marked.timelines_invalidated == 1  # her head changed: her cached timeline is stale

    _mark_identity_internal(world, "staff1", False)
    entities.resolve_all(world)
    assert _staff(world, wendy) is False
