"""resolve_worker/twins.py: identical identities are resolved once and fanned out after clustering."""
from __future__ import annotations

from resolve_worker import twins
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


def test_fan_out_gives_twins_their_representatives_entity_and_counts_rows():
    a, b = object(), object()
    rows = [row("1"), row("2"), row("3"), row("4")]
    records = [a, a, b, a]
    reps, rep_of, links = twins.collapse(rows, records, always, set())
    rep_maps = [Mapping(rows[2].key, "person", "E2", 1.0, "singleton", {"matched_on": [], "cluster_size": 1}),
                Mapping(rows[0].key, "person", "E1", 1.0, "singleton", {"matched_on": [], "cluster_size": 1})]
    out = twins.fan_out(rep_maps, rows, records, reps, rep_of, links, Mapping)
    assert [m.key for m in out] == [r.key for r in rows]
    assert [m.entity_id for m in out] == ["E1", "E1", "E2", "E1"]
    assert out[0].method == "email_exact" and out[0].evidence["linked_to"] == list(rows[1].key)
    assert out[1].evidence == {"matched_on": [f"email={a}"], "linked_to": list(rows[0].key), "cluster_size": 3}
    assert out[0].evidence["cluster_size"] == 3 and out[3].confidence == 0.99
    assert out[2].method == "singleton" and out[2].evidence["cluster_size"] == 1


def test_fan_out_keeps_a_representatives_better_link():
    a, b = object(), object()
    rows = [row("1"), row("2"), row("3")]
    records = [a, a, b]
    reps, rep_of, links = twins.collapse(rows, records, always, set())
    better = {"matched_on": ["name=x"], "linked_to": list(rows[2].key), "cluster_size": 2}
    rep_maps = [Mapping(rows[0].key, "person", "E", 0.999, "source_link", dict(better)),
                Mapping(rows[2].key, "person", "E", 0.999, "source_link", dict(better))]
    out = twins.fan_out(rep_maps, rows, records, reps, rep_of, links, Mapping)
    assert out[0].method == "source_link" and out[0].evidence["cluster_size"] == 3
    assert out[1].evidence["linked_to"] == list(rows[0].key) and out[2].evidence["cluster_size"] == 3


def test_weights_count_rows_per_representative():
    assert twins.weights([0, 2], [0, 0, 2, 0]) == [3, 1]


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
