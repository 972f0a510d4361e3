"""resolve_worker/matching.py: normalisation rules and deterministic clustering."""
from __future__ import annotations

import uuid

import pytest

from resolve_worker.matching import (IdentityRow, is_shared_inbox, normalise_company_name, normalise_domain,
                                     normalise_email, resolve)


def person(source, sid, *emails, existing=None, pinned=False, name=None):
    return IdentityRow(source, "user", sid, "person", name=name, emails=list(emails),
                       existing_entity_id=existing, pinned=pinned)


def company(source, sid, name=None, *domains, existing=None, pinned=False):
    return IdentityRow(source, "company", sid, "company", name=name, domains=list(domains),
                       existing_entity_id=existing, pinned=pinned)


def by_key(mappings):
    return {m.key: m for m in mappings}


def ent(mappings, source, sid):
    return next(m.entity_id for m in mappings if m.key[0] == source and m.key[2] == sid)


# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("raw, expected", [
    ("Jane.Doe@Acme.COM", "jane.doe@acme.com"),
    ("  jane@acme.com \n", "jane@acme.com"),
    ("jane+crm@acme.com", "jane@acme.com"),
    ("j.a.n.e@gmail.com", "jane@gmail.com"),
    ("J.Ane+news@GoogleMail.com", "jane@gmail.com"),
    ("first.last@acme.com", "first.last@acme.com"),  # dots only matter outside gmail
    # a mail header's or CRM export's "Name <addr>", and mailto links: these were thrown away
    ("Jane Doe <Jane.Doe+crm@Acme.com>", "jane.doe@acme.com"),
    ('"Doe, Jane" <jane@acme.com>', "jane@acme.com"),
    ("mailto:Jane@Acme.com?subject=Renewal", "jane@acme.com"),
])
def test_normalise_email(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "not-an-email", "jane@localhost", "+tag@acme.com", "@acme.com",
                                 "Jane <>", "mailto:", "jane doe@acme.com",
                                 # cut to 200 characters this read as the valid ...@mail.exam
                                 "j" * 190 + "@mail.example.com"])
def test_normalise_email_rejects_non_addresses(raw):
    assert normalise_email(raw) is None


def test_shared_inbox_detection():
    assert is_shared_inbox("sales@acme.com")
    assert is_shared_inbox("support@acme.com")
    assert not is_shared_inbox("jane@acme.com")


@pytest.mark.parametrize("raw, expected", [
    ("acme.com", "acme.com"),
    ("www.Acme.com", "acme.com"),
    ("https://www.acme.com/about/team", "acme.com"),
    ("http://acme.com", "acme.com"),
    ("localhost", None),
    (None, None),
])
def test_normalise_domain(raw, expected):
    assert normalise_domain(raw) == expected


def test_normalise_company_name_drops_legal_suffixes_case_and_punctuation():
    assert normalise_company_name("Acme, Inc.") == "acme"
    assert normalise_company_name("ACME Corporation") == "acme"
    assert normalise_company_name("Acme L.L.C.") == "acme"
    assert normalise_company_name("Acme Widgets GmbH") == "acme widgets"
    assert normalise_company_name("Société Générale") == "societe generale"
    assert normalise_company_name("Inc.") is None
    assert normalise_company_name(None) is None
    assert normalise_company_name("Acme Widgets") != normalise_company_name("Acme Gadgets")


def test_legal_words_are_only_stripped_as_suffix():
    assert normalise_company_name("Co-op Bank") != normalise_company_name("OP Bank")


# ----------------------------------------------------------------------------- persons


def test_persons_sharing_an_email_become_one_entity():
    rows = [person("gong", "u1", "Jane.Doe@acme.com"), person("slack", "U9", "jane.doe+slack@ACME.com"),
            person("hubspot", "c3", "bob@acme.com")]
    m = by_key(resolve(rows))
    jane_g, jane_s, bob = m[rows[0].key], m[rows[1].key], m[rows[2].key]
    assert jane_g.entity_id == jane_s.entity_id
    assert bob.entity_id != jane_g.entity_id
    assert jane_g.method == jane_s.method == "email_exact"
    assert 0 < jane_g.confidence < 1
    assert "email=jane.doe@acme.com" in jane_g.evidence["matched_on"]
    assert jane_g.evidence["cluster_size"] == 2
    assert bob.method == "singleton" and bob.evidence["cluster_size"] == 1
    uuid.UUID(jane_g.entity_id)  # a real UUID for new entities


def test_email_joins_are_transitive():
    rows = [person("gong", "a", "a@acme.com"), person("slack", "b", "a@acme.com", "b@acme.com"),
            person("hubspot", "c", "b@acme.com")]
    ids = {m.entity_id for m in resolve(rows)}
    assert len(ids) == 1


def test_gmail_variants_join():
    rows = [person("gong", "a", "john.smith@gmail.com"), person("slack", "b", "johnsmith+x@googlemail.com")]
    m = resolve(rows)
    assert m[0].entity_id == m[1].entity_id


@pytest.mark.parametrize("first, second", [("sales@acme.com", "sales@acme.com"),
                                           ("support@acme.com", "Support@ACME.com"),
                                           ("info@acme.com", "info+web@acme.com")])
def test_shared_inbox_never_joins_two_persons(first, second):
    rows = [person("gong", "a", first, "alice@acme.com"), person("slack", "b", second, "bob@acme.com")]
    m = by_key(resolve(rows))
    assert m[rows[0].key].entity_id != m[rows[1].key].entity_id
    assert m[rows[0].key].method == m[rows[1].key].method == "singleton"


def test_shared_inbox_alone_never_joins():
    rows = [person("gong", "a", "sales@acme.com"), person("slack", "b", "sales@acme.com")]
    m = resolve(rows)
    assert m[0].entity_id != m[1].entity_id


def test_unrelated_persons_stay_apart():
    rows = [person("gong", str(i), f"user{i}@acme.com") for i in range(5)]
    assert len({m.entity_id for m in resolve(rows)}) == 5


def test_person_without_email_is_a_singleton():
    rows = [person("gong", "a"), person("slack", "b")]
    m = resolve(rows)
    assert m[0].entity_id != m[1].entity_id
    assert {x.method for x in m} == {"singleton"} and {x.confidence for x in m} == {1.0}


def test_one_mapping_per_identity_with_its_type():
    rows = [person("gong", "a", "a@acme.com"), company("hubspot", "c1", "Acme", "acme.com")]
    out = resolve(rows)
    assert sorted(m.key for m in out) == sorted(r.key for r in rows)
    assert by_key(out)[rows[0].key].entity_type == "person"
    assert by_key(out)[rows[1].key].entity_type == "company"


def test_persons_and_companies_never_share_an_entity():
    rows = [person("gong", "a", "x@acme.com", name="Acme"), company("hubspot", "c1", "Acme", "acme.com")]
    m = resolve(rows)
    assert m[0].entity_id != m[1].entity_id


# ----------------------------------------------------------------------------- companies


def test_companies_join_on_normalised_domain():
    rows = [company("hubspot", "1", "Acme Holdings", "https://www.acme.com/"),
            company("salesforce", "2", "Acme Group", "acme.com")]
    m = by_key(resolve(rows))
    assert m[rows[0].key].entity_id == m[rows[1].key].entity_id
    assert m[rows[0].key].method == "domain_exact"
    assert "domain=acme.com" in m[rows[0].key].evidence["matched_on"]


def test_companies_join_on_legal_suffix_normalised_name():
    rows = [company("hubspot", "1", "Acme, Inc."), company("salesforce", "2", "ACME Corporation"),
            company("gong", "3", "Globex LLC")]
    m = by_key(resolve(rows))
    assert m[rows[0].key].entity_id == m[rows[1].key].entity_id
    assert m[rows[2].key].entity_id != m[rows[0].key].entity_id
    assert m[rows[0].key].method == "name_exact"
    assert m[rows[0].key].confidence < 1


@pytest.mark.parametrize("webmail", ["gmail.com", "www.yahoo.com", "https://outlook.com/x"])
def test_webmail_domains_never_join_companies(webmail):
    rows = [company("hubspot", "1", "Alpha Plumbing", webmail), company("salesforce", "2", "Beta Bakery", webmail)]
    m = by_key(resolve(rows))
    assert m[rows[0].key].entity_id != m[rows[1].key].entity_id


def test_different_domains_and_names_stay_apart():
    rows = [company("hubspot", "1", "Acme", "acme.com"), company("salesforce", "2", "Globex", "globex.com")]
    m = resolve(rows)
    assert m[0].entity_id != m[1].entity_id


# ----------------------------------------------------------------------------- stable ids and pins


def test_existing_entity_id_is_reused():
    eid = str(uuid.uuid4())
    rows = [person("gong", "a", "jane@acme.com", existing=eid), person("slack", "b", "jane@acme.com")]
    out = resolve(rows)
    assert {m.entity_id for m in out} == {eid}


def test_ids_stable_across_runs():
    rows = [person("gong", "a", "jane@acme.com"), person("slack", "b", "jane@acme.com")]
    first = resolve(rows)[0].entity_id
    rerun = [person("gong", "a", "jane@acme.com", existing=first), person("slack", "b", "jane@acme.com", existing=first),
             person("hubspot", "c", "jane@acme.com")]
    assert {m.entity_id for m in resolve(rerun)} == {first}


def test_majority_existing_id_wins_when_clusters_merge():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    rows = [person("gong", "1", "x@acme.com", existing=a), person("slack", "2", "x@acme.com", existing=a),
            person("hubspot", "3", "x@acme.com", existing=b)]
    assert {m.entity_id for m in resolve(rows)} == {a}


def test_tied_existing_ids_go_to_the_smallest_whatever_the_row_order():
    a, b = sorted(str(uuid.uuid4()) for _ in range(2))
    rows = [person("gong", "1", "x@acme.com", existing=b), person("hubspot", "3", "x@acme.com", existing=a)]
    assert {m.entity_id for m in resolve(rows)} == {m.entity_id for m in resolve(rows[::-1])} == {a}


def test_singleton_without_existing_gets_fresh_id_each_time():
    rows = [person("gong", "a", "jane@acme.com")]
    assert resolve(rows)[0].entity_id != resolve(rows)[0].entity_id


def test_pinned_row_keeps_its_entity_and_is_manual():
    pinned_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    rows = [person("gong", "a", "jane@acme.com", existing=pinned_id, pinned=True),
            person("slack", "b", "jane@acme.com", existing=other_id),
            person("hubspot", "c", "jane@acme.com")]
    m = by_key(resolve(rows))
    pinned = m[rows[0].key]
    assert pinned.entity_id == pinned_id
    assert pinned.method == "manual" and pinned.confidence == 1.0
    # the others cluster together by email and do not get pulled onto the pinned entity
    assert m[rows[1].key].entity_id == m[rows[2].key].entity_id == other_id


def test_pinned_company_is_not_moved_by_matching_domain():
    pinned_id = str(uuid.uuid4())
    rows = [company("hubspot", "1", "Acme", "acme.com", existing=pinned_id, pinned=True),
            company("salesforce", "2", "Acme", "acme.com")]
    m = by_key(resolve(rows))
    assert m[rows[0].key].entity_id == pinned_id and m[rows[0].key].method == "manual"
    assert m[rows[1].key].entity_id != pinned_id
