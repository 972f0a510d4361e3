"""Resolving twice changes nothing: the first run's result is already the fixed point. A second
run with no new data writes no mapping, changes no entity head (display name, primary email,
company, name, domains) and invalidates no cached timeline, whatever order Postgres returns the
rows in. Real Postgres and Redis; the generator case also runs the real ingest."""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from common import db
from ingest_worker import pipeline
from ingest_worker.generate import generate
from resolve_worker import entities
from tests.integration.test_resolve import add_identity, entity, forget_decisions_applied

SOURCES = ("gong", "slack", "hubspot", "salesforce")
# scale 10 is the smallest measured to show the flip before the fix (scale 2 did not)
SCALE = int(os.environ.get("PAYREADY_TEST_FIXED_POINT_SCALE", "10"))


def heads(settings) -> dict:
    with db.transaction(settings) as conn:
        persons = conn.execute(sa.text("SELECT id::text, display_name, primary_email, company_id::text, "
                                       "is_internal FROM persons")).all()
        companies = conn.execute(sa.text("SELECT id::text, name, primary_domain, domains FROM companies")).all()
    return {r[0]: tuple(r[1:]) for r in (*persons, *companies)}


def reverse_physical_order(settings, *tables: str) -> None:
    """Rewrite each table with its rows in the opposite order, so scans and joins return them
    differently from the run before (as rows rewritten by an UPDATE can)."""
    with db.transaction(settings) as conn:
        for table in tables:
            conn.execute(sa.text(f"CREATE TEMP TABLE reversed ON COMMIT DROP AS "
                                 f"SELECT * FROM {table} ORDER BY ctid DESC"))
            conn.execute(sa.text(f"DELETE FROM {table}"))
            conn.execute(sa.text(f"INSERT INTO {table} SELECT * FROM reversed"))
            conn.execute(sa.text("DROP TABLE reversed"))


def test_heads_do_not_depend_on_the_order_rows_come_back_in(domain):
    """Ties between members (two spellings of one name seen as often, two addresses seen as often,
    two companies claiming one domain) are broken by the values, not by which member came first."""
    add_identity(domain, "gong", "parties", "e1", name="Ethan Perez",
                 emails=["ethan@meridianfreight.com", "ethan.perez@meridianfreight.com"])
    add_identity(domain, "hubspot", "contacts", "e2", name="Perez, Ethan",
                 emails=["ethan.perez@meridianfreight.com", "ethan@meridianfreight.com"])
    add_identity(domain, "gong", "parties", "c1", name="Chris Jones", emails=["christopher@clearwater.com"])
    add_identity(domain, "gong", "parties", "c2", name="+1 858-691-6770", phone="+1 858-691-6770",
                 emails=["christopher@clearwater.com"])
    add_identity(domain, "hubspot", "companies", "g1", entity_type="company", name="Globex",
                 domains=["globex.com"])
    add_identity(domain, "salesforce", "Account", "g2", entity_type="company", name="Initrode Holdings",
                 domains=["globex.com"])
    add_identity(domain, "gong", "parties", "a1", name="Ann Lee", emails=["ann.lee@globex.com"])
    first = entities.resolve_all(domain)
    assert entity(domain, "gong", "parties", "e1") == entity(domain, "hubspot", "contacts", "e2")
    assert entity(domain, "hubspot", "companies", "g1") != entity(domain, "salesforce", "Account", "g2")
    after_first = heads(domain)
    ethan = after_first[entity(domain, "gong", "parties", "e1")]
    assert ethan[:2] == ("Ethan Perez", "ethan.perez@meridianfreight.com")  # "First Last", then by value
    assert after_first[entity(domain, "gong", "parties", "c1")][0] == "Chris Jones"  # a phone is no name
    for _ in range(2):
        reverse_physical_order(domain, "source_identities", "entity_mappings")
        forget_decisions_applied(domain)  # else the run finds nothing to resolve and matches nothing
        again = entities.resolve_all(domain)
        assert (again.changed, again.timelines_invalidated) == (0, 0)
        assert heads(domain) == after_first
    assert first.changed == 7


@pytest.fixture(scope="module")
def generated(stack_urls, tmp_path_factory):
    from tests.conftest import drop_domain, make_settings

    landing = tmp_path_factory.mktemp("landing")
    generate(landing, scale=SCALE, seed=7)
    settings = make_settings(stack_urls, f"t_fp_{os.getpid()}", landing_dir=landing)
    from common.cli import migrate

    migrate(settings)
    for source in SOURCES:
        pipeline.process_source(settings, source, None)
    yield settings
    drop_domain(settings)


def test_the_first_resolve_run_on_generated_data_is_already_the_fixed_point(generated):
    first = entities.resolve_all(generated)
    assert first.changed > 0 and first.timelines_invalidated > 0
    after_first = heads(generated)
    forget_decisions_applied(generated)  # else the run finds nothing to resolve and matches nothing
    second = entities.resolve_all(generated)
    assert (second.changed, second.timelines_invalidated) == (0, 0)
    assert heads(generated) == after_first
    assert list(second.phases) == ["load", "match", "mappings", "entities", "links", "commit", "caches"]
    third = entities.resolve_all(generated)  # nothing new since: matching skipped
    assert third.unchanged and list(third.phases) == ["check", "links", "commit", "caches"]
    assert (third.changed, third.timelines_invalidated, third.identities) == (0, 0, second.identities)
    assert (third.persons, third.companies, third.links) == (second.persons, second.companies, second.links)


def test_a_full_run_over_unchanged_identities_rewrites_no_row(generated):
    """A full re-resolve sends every mapping, entity and link; a row whose values are the same is
    neither rewritten (no dead tuple, no index churn, ``updated_at`` kept) nor counted."""
    entities.resolve_all(generated)
    stamps = _updated_at(generated)
    full = entities.resolve_all(generated, full=True)
    assert (full.changed, full.timelines_invalidated) == (0, 0)
    assert _updated_at(generated) == stamps


def _updated_at(settings) -> dict:
    with db.transaction(settings) as conn:
        return {table: conn.execute(sa.text(f"SELECT max(updated_at), count(*) FROM {table}")).one()
                for table in ("entity_mappings", "persons", "companies")}
