"""Entity heads are chosen from the members' values, never from their order."""
from __future__ import annotations

import itertools

from resolve_worker import heads


def test_display_name_prefers_a_real_full_name_then_the_most_common_then_first_last():
    names = ["Perez, Ethan", "Ethan Perez", "+1 858-691-6770", "Ethan", None, "Ethan Perez", "Perez, Ethan"]
    for order in itertools.permutations(names):
        assert heads.person_display_name(order) == "Ethan Perez"
    assert heads.person_display_name(["N/A", "N/A", "Zoe Quinn"]) == "Zoe Quinn"
    assert heads.person_display_name(["+1 858-691-6770"]) == "+1 858-691-6770"  # better than nothing
    assert heads.person_display_name([None, ""]) is None


def test_company_name_email_and_ids_break_ties_by_value():
    for order in itertools.permutations(["Globex", "Globex Corp", "N/A"]):
        assert heads.company_name(order) == "Globex"
    for order in itertools.permutations(["b@x.com", "a@x.com", "b@x.com", "a@x.com"]):
        assert heads.primary_email(order) == "a@x.com"
    assert heads.primary_email(["b@x.com", "a@x.com", "b@x.com"]) == "b@x.com"  # most common first
    assert heads.most_common_id(["id-2", None, "id-1"]) == "id-1"
    assert heads.most_common_id([None]) is None


def test_a_domain_goes_to_the_company_most_members_give_it_to():
    claims = [("globex.com", "c2"), ("globex.com", "c1"), ("initrode.com", "c2"), ("globex.com", "c2")]
    for order in itertools.permutations(claims):
        assert heads.company_by_domain(order) == {"globex.com": "c2", "initrode.com": "c2"}
    assert heads.company_by_domain([("globex.com", "c2"), ("globex.com", "c1")]) == {"globex.com": "c1"}
