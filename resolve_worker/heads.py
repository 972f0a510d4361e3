"""What an entity shows (its head: display name, primary email, company; name and domains), chosen
from its members' values alone.

Every choice ranks the candidate values by what they are and how many members carry them, then by
the value itself, so the head does not depend on the order the members come in (the order Postgres
returns the rows, which changes once the first run has rewritten them) nor on whether the entity
was just created: the first resolve run writes the head every later run computes again.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Optional

from resolve_worker import normalise as nz


def _best(values: Iterable[str], kind: Callable[[str], tuple] = lambda v: ()) -> Optional[str]:
    """The value to show: best ``kind`` first (smaller is better), then the most common, then the
    smallest value, so ties never fall to whichever came first."""
    present = [v for v in values if v]
    if not present:
        return None
    first = present[0]
    if all(v == first for v in present):  # most entities: one member, or members that agree
        return first
    counts = Counter(present)
    return min(counts, key=lambda v: (kind(v), -counts[v], v))


def _person_name_kind(name: str) -> tuple:
    parsed = nz.parse_person_name(name)
    # a real name before a phone number or placeholder; "First Last" before a first name alone
    # or the "Last, First" of a CRM export
    return (parsed is None, not (parsed and parsed.first and parsed.last), "," in name)


def _company_name_kind(name: str) -> tuple:
    return (nz.normalise_company_name(name) is None,)


def person_display_name(names: Iterable[str]) -> Optional[str]:
    return _best(names, _person_name_kind)


def company_name(names: Iterable[str]) -> Optional[str]:
    return _best(names, _company_name_kind)


def primary_email(emails: Iterable[str]) -> Optional[str]:
    """The normalised address the members give most often (the smallest on a tie)."""
    return _best(emails)


def most_common_id(entity_ids: Iterable[str]) -> Optional[str]:
    """The entity named by most members (the smallest id on a tie: ids are kept from run to run)."""
    return _best(entity_ids)


def company_by_domain(claims: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Domain -> the company whose members give it most often (the smallest id on a tie), from
    (domain, company id) pairs, one per member naming the domain."""
    by_domain: dict[str, list[str]] = {}
    for domain, company_id in claims:
        by_domain.setdefault(domain, []).append(company_id)
    return {d: most_common_id(ids) for d, ids in by_domain.items()}
