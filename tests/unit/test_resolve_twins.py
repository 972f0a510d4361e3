"""resolve_worker/twins.py: identical identities are resolved once and fanned out after clustering."""
from __future__ import annotations

import uuid

from resolve_worker import mappings, twins
from resolve_worker.matching import IdentityRow, Mapping, resolve


def row(sid, name="Jane Doe", *emails, existing=None, pinned=False, linked=None, source="gong"):
    return IdentityRow(source, "parties", sid, "person", name=name, emails=list(emails), existing_entity_id=existing,
                       pinned=pinned, linked_key=linked)


def always(rec):
    return (0.99, ("email_exact", [f"email={rec}"]))


def test_collapse_groups_rows_sharing_a_record_and_keeps_the_rest_apart():
    a, b = object(), object()
    rows = [row("1"), row("2"), row("3"), row("4", pinned=True), row("5", existing="E"), row("6"), row("7")]
    records = [a, a, b, a, a, a, b]
    rows[5].source_id = "protected"
    reps, rep_of, links = twins.collapse(rows, records, always, protected={rows[5].key})
    assert reps == [0, 2, 3, 4, 5]
    assert rep_of == [0, 0, 2, 3, 4, 5, 2]
    assert set(links) == {id(a), id(b)}


def test_collapse_keeps_rows_apart_when_their_record_would_not_link_to_itself():
    a, single = object(), object()
    seen = []

    def never(rec):
        seen.append(rec)
        return None

    reps, rep_of, links = twins.collapse([row("1"), row("2"), row("3")], [a, a, single], never, set())
    assert reps == [0, 1, 2] and rep_of == [0, 1, 2] and links == {}
    assert seen == [a]  # a record with one row is never scored against itself


def test_of_reps_lists_each_representatives_twins_and_their_self_link():
    a, b = object(), object()
    rows = [row("1"), row("2"), row("3"), row("4")]
    reps, rep_of, links = twins.collapse(rows, [a, a, b, a], always, set())
    assert twins.of_reps(rows, [a, a, b, a], reps, rep_of, links) == [([rows[1], rows[3]], [1, 3], always(a)), None]
    assert twins.of_reps(rows[2:3], [b], [0], [0], {}) is None  # nothing collapsed


def test_mappings_fan_twins_out_in_input_order_with_row_counts():
    a, b = object(), object()
    rows = [row("1"), row("2"), row("3"), row("4")]
    records = [a, a, b, a]
    reps, rep_of, links = twins.collapse(rows, records, always, set())
    reps_rows = [rows[i] for i in reps]
    out = mappings.build(reps_rows, [r.key for r in reps_rows], {0: [0], 1: [1]}, [None, None], {}, "person",
                         Mapping, twins.of_reps(rows, records, reps, rep_of, links), reps)
    # the biggest entity first, its identities in input order
    assert [m.key for m in out] == [rows[i].key for i in (0, 1, 3, 2)]
    one, two, four, three = out
    assert one.entity_id == two.entity_id == four.entity_id != three.entity_id
    assert one.method == "email_exact" and one.evidence["linked_to"] == list(rows[1].key)
    assert two.evidence == {"matched_on": [f"email={a}"], "linked_to": list(rows[0].key), "cluster_size": 3}
    assert four.confidence == 0.99 and four.evidence["cluster_size"] == 3 and one.evidence["cluster_size"] == 3
    assert three.method == "singleton" and three.evidence == {"matched_on": [], "cluster_size": 1}


def test_mappings_keep_a_representatives_better_link():
    a, b = object(), object()
    rows = [row("1"), row("2"), row("3")]
    records = [a, a, b]
    reps, rep_of, links = twins.collapse(rows, records, always, set())
    best = {0: (0.999, 1, ("source_link", ["linked=x"])), 1: (0.999, 0, ("source_link", ["linked=x"]))}
    out = mappings.build([rows[0], rows[2]], [rows[0].key, rows[2].key], {0: [0, 1]}, [None, None], best,
                         "person", Mapping, twins.of_reps(rows, records, reps, rep_of, links), reps)
    assert [m.key for m in out] == [r.key for r in rows]
    assert out[0].method == "source_link" and out[0].evidence["cluster_size"] == 3
    assert out[0].evidence["linked_to"] == list(rows[2].key)
    assert out[1].evidence["linked_to"] == list(rows[0].key) and out[2].evidence["cluster_size"] == 3


def test_new_ids_are_distinct_version_4_uuids():
    ids = mappings.new_ids(500)
    assert len(set(ids)) == 500
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 and str(uuid.UUID(i)) == i
               for i in ids)


# ----------------------------------------------------------------------------- through resolve


def test_identical_rows_resolve_to_one_entity_with_row_counts():
    rows = [row(str(i), "Jane Doe", "jane@acme.com") for i in range(4)] + [row("x", "Bob Roe", "bob@acme.com")]
    m = {x.key: x for x in resolve(rows)}
    assert len({m[r.key].entity_id for r in rows[:4]}) == 1
    assert all(m[r.key].evidence["cluster_size"] == 4 and m[r.key].method == "email_exact" for r in rows[:4])
    assert m[rows[4].key].method == "singleton"


def test_identical_name_only_rows_stay_apart_as_before():
    # a bare name is not enough to link two identities, identical or not
    rows = [row("1", "Jane Doe"), row("2", "Jane Doe")]
    m = resolve(rows)
    assert m[0].entity_id != m[1].entity_id and {x.method for x in m} == {"singleton"}


def test_identical_rows_of_different_existing_entities_are_not_collapsed():
    rows = [row("1", "Jane Doe", "jane@acme.com", existing="11111111-1111-4111-8111-111111111111"),
            row("2", "Jane Doe", "jane@acme.com", existing="22222222-2222-4222-8222-222222222222"),
            row("3", "Jane Doe", "jane@acme.com", existing="22222222-2222-4222-8222-222222222222")]
    m = {x.key: x for x in resolve(rows, incremental=True)}
    # an incremental run only scores new identities: the two existing entities stay as they are
    assert [m[r.key].entity_id[0] for r in rows] == ["1", "2", "2"]
    assert m[rows[1].key].evidence["cluster_size"] == 2 and m[rows[0].key].method == "singleton"


def test_a_source_link_target_and_pinned_twins_keep_their_own_mapping():
    user = row("u", "Jane Doe", "jane@acme.com", source="gong")
    pinned = row("p", "Jane Doe", "jane@acme.com", existing="33333333-3333-4333-8333-333333333333", pinned=True)
    party = row("q", "Jane Doe", "jane@acme.com", linked=user.key)
    m = {x.key: x for x in resolve([user, pinned, party])}
    assert m[pinned.key].entity_id == "33333333-3333-4333-8333-333333333333" and m[pinned.key].method == "manual"
    assert m[party.key].entity_id == m[user.key].entity_id != m[pinned.key].entity_id
