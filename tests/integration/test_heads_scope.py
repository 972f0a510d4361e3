"""A routine resolve run computes only the entity heads that can have changed (``entities._touched``):
after every kind of change the stored heads must be exactly what computing every head afresh gives,
including heads that depend on another entity (a person's company through a company identity or
through the domains companies claim)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from common import db
from resolve_worker import entities, manual
from tests.integration.test_resolve import entity

pytestmark = pytest.mark.integration


def heads_a_full_recomputation_would_change(settings) -> set[str]:
    """Ids whose stored head differs from computing every head from the stored mappings (rolled back)."""
    with db.engine_for(settings).connect() as conn:
        transaction = conn.begin()
        try:
            rows, stored, _ = entities._load(conn, {})
            by_key = {r.key: r for r in rows}
            mappings = [SimpleNamespace(key=key, entity_type=by_key[key].entity_type, entity_id=entity_id)
                        for key, entity_id in stored.items() if entity_id]
            return entities._write_entities(conn, mappings, by_key)
        finally:
            transaction.rollback()


def entities_without_identities(settings) -> int:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM persons p WHERE NOT EXISTS (SELECT 1 FROM entity_mappings em "
            "WHERE em.entity_id = p.id)) + (SELECT count(*) FROM companies c WHERE NOT EXISTS "
            "(SELECT 1 FROM entity_mappings em WHERE em.entity_id = c.id))")).scalar()


def _routine_run_keeps_the_heads_a_full_recomputation_gives(settings) -> None:
    entities.resolve_all(settings)
    assert heads_a_full_recomputation_would_change(settings) == set()
    assert entities_without_identities(settings) == 0


def _identity(settings, source, source_type, source_id, name, *, entity_type="person", emails=(), domains=(),
              company=None) -> tuple[str, str, str]:
    with db.transaction(settings) as conn:
        conn.execute(sa.text(
            "INSERT INTO source_identities (source, source_type, source_id, entity_type, name, emails, domains, "
            "company_source_type, company_source_id) VALUES (:s, :t, :i, :e, :n, CAST(:em AS jsonb), "
            "CAST(:d AS jsonb), :ct, :ci)"),
            {"s": source, "t": source_type, "i": source_id, "e": entity_type, "n": name, "em": json.dumps(emails),
             "d": json.dumps(domains), "ct": company and company[0], "ci": company and company[1]})
    return source, source_type, source_id


def _company_of(settings, key) -> str | None:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text("SELECT company_id::text FROM persons WHERE id = CAST(:p AS uuid)"),
                            {"p": entity(settings, *key)}).scalar()


def _primary_email(settings, key) -> str | None:
    with db.transaction(settings) as conn:
        return conn.execute(sa.text("SELECT primary_email FROM persons WHERE id = CAST(:p AS uuid)"),
                            {"p": entity(settings, *key)}).scalar()


def test_routine_runs_keep_the_heads_a_full_recomputation_gives(domain):
    xylo = _identity(domain, "hubspot", "companies", "x1", "Xylo Corp", entity_type="company",
                     domains=["xylo.example"])
    zenith = _identity(domain, "hubspot", "companies", "z1", "Zenith Inc", entity_type="company",
                       domains=["zenith.example"])
    yarrow = _identity(domain, "salesforce", "Account", "y1", "Yarrow Ltd", entity_type="company",
                       domains=["yarrow.example"])
    pat = _identity(domain, "gong", "parties", "p1", "Pat Doe", emails=["pat@xylo.example"])  # company by domain
    quinn = _identity(domain, "hubspot", "contacts", "q1", "Quinn Roe", emails=["quinn@gmail.com"],
                      company=("companies", "z1"))  # company by its company identity
    sam = _identity(domain, "gong", "parties", "s1", "Sam Birch", emails=["sam@walnut.example"])
    robin = [_identity(domain, "gong", "parties", "r1", "Robin Fox", emails=["robin@fox.example"]),
             _identity(domain, "hubspot", "contacts", "r2", "Robin Fox", emails=["robin.fox@fox.example"]),
             _identity(domain, "slack", "users", "r3", "Robin Fox", emails=["robin.fox@fox.example"])]
    _routine_run_keeps_the_heads_a_full_recomputation_gives(domain)
    assert _company_of(domain, pat) == entity(domain, *xylo)
    assert _company_of(domain, quinn) == entity(domain, *zenith)
    assert _company_of(domain, sam) is None

    # a company's identity stops claiming a domain: the person it was the company of by that domain
    # (and nothing else of theirs changed) has none now
    with db.transaction(domain) as conn:
        conn.execute(sa.text("UPDATE source_identities SET domains = '[\"xylo-group.example\"]', resolved = false "
                             "WHERE source_id = 'x1'"))
    _routine_run_keeps_the_heads_a_full_recomputation_gives(domain)
    assert _company_of(domain, pat) is None

    # a new company claims the domain of a stored person's address
    walnut = _identity(domain, "salesforce", "Account", "w1", "Walnut Co", entity_type="company",
                       domains=["walnut.example"])
    _routine_run_keeps_the_heads_a_full_recomputation_gives(domain)
    assert _company_of(domain, sam) == entity(domain, *walnut)

    # the company identity a person names moves to another company (a merge)
    manual.merge(domain, entity(domain, *yarrow), entity(domain, *zenith))
    assert heads_a_full_recomputation_would_change(domain) == set()
    assert entities_without_identities(domain) == 0  # the company merged away is gone
    assert _company_of(domain, quinn) == entity(domain, *yarrow)

    # members leave an entity: the head of the one they leave changes (its most common address)
    robin_ids = {entity(domain, *key) for key in robin}
    if len(robin_ids) > 1:  # two addresses at one employer are kept apart: bring them together first
        keep = entity(domain, *robin[0])
        for other in robin_ids - {keep}:
            manual.merge(domain, keep, other)
    assert _primary_email(domain, robin[0]) == "robin.fox@fox.example"
    manual.split(domain, entity(domain, *robin[0]), robin[1:])
    assert heads_a_full_recomputation_would_change(domain) == set()
    assert _primary_email(domain, robin[0]) == "robin@fox.example"
