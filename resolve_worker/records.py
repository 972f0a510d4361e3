"""What each identity says, normalised once: person and company records, and where people work.

Identical rows (a rep on every call, a contact in two tools: a third of the rows at 100k) are
normalised and parsed once and share one record object, which the twin collapse relies on.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from operator import attrgetter
from typing import Iterable, Optional

from resolve_worker import normalise as nz
from resolve_worker import scoring


def company_records(rows: list, phone_region: str = nz.DEFAULT_PHONE_REGION) -> list[scoring.CompanyRecord]:
    """One record per row; identical rows share one record object (their twins collapse)."""
    out, same = [], {}
    for i, row in enumerate(rows):
        # ``CompanyRecord.signature()``'s values: a record is built only for a new one
        said = (nz.normalise_company_name(row.name), frozenset(nz.company_domains(row.domains)),
                nz.normalise_phone(row.phone, phone_region))
        rec = same.get(said)
        if rec is None:
            rec = same[said] = scoring.CompanyRecord(i, *said)
        out.append(rec)
    return out


_EMPLOYER = attrgetter("source", "company_source_type", "company_source_id", "company_name")


class CompanyContext:
    """Where a person works, as company entity ids: by company identity, company name, email domain."""

    def __init__(self, rows: list, maps: list):
        self.by_key = {m.key: m.entity_id for m in maps}
        by_row = {r.key: r for r in rows}
        names: dict[str, set[str]] = defaultdict(set)
        domains: dict[str, set[str]] = defaultdict(set)
        for m in maps:
            row = by_row[m.key]
            name = nz.normalise_company_name(row.name)
            if name:
                names[name].add(m.entity_id)
            for d in nz.company_domains(row.domains):
                domains[d].add(m.entity_id)
        # a name or domain shared by two companies says nothing on its own
        self.by_name = {k: next(iter(v)) for k, v in names.items() if len(v) == 1}
        self.by_domain = {k: next(iter(v)) for k, v in domains.items() if len(v) == 1}
        self._seen: dict = {}  # (what a row says of its employer, work domains) -> employers

    def of(self, row, work_domains: frozenset[str]) -> frozenset[str]:
        """The employers of a row; memoised per instance: colleagues say the same things."""
        try:
            said = (_EMPLOYER(row), work_domains)
            known = self._seen.get(said)
        except TypeError:  # junk (unhashable) values
            return self._of(row, work_domains)
        if known is None:
            known = self._seen[said] = self._of(row, work_domains)
        return known

    def _of(self, row, work_domains: Iterable[str]) -> frozenset[str]:
        out = set()
        if row.company_source_id:
            eid = self.by_key.get((row.source, row.company_source_type, row.company_source_id))
            if eid:
                out.add(eid)
        name = nz.normalise_company_name(row.company_name)
        if name:
            out.add(self.by_name.get(name, "name:" + name))
        for d in work_domains:
            if d in self.by_domain:
                out.add(self.by_domain[d])
        return frozenset(out)


def _ambiguous_emails(parsed: list[tuple]) -> set[str]:
    """Addresses that identify nobody: seen with names that cannot be one person (a team mailbox
    under a personal name), or a personal (webmail) address seen at two unrelated employers."""
    first_name: dict[str, object] = {}  # address -> the first name seen with it
    names: dict[str, set] = {}  # address -> its names (up to 8), only once it has two
    employers: dict[str, set] = defaultdict(set)
    for name, emails, companies, work in parsed:
        employer = None
        for email in emails:
            if name is not None:
                first = first_name.setdefault(email, name)
                if first != name:
                    seen = names.get(email)
                    if seen is None:
                        names[email] = {first, name}
                    elif len(seen) < 8:
                        seen.add(name)
            if _employer_of(email) is None:  # a personal address
                if employer is None:
                    employer = companies | work
                if employer and len(employers[email]) < 8:
                    employers[email].add(employer)
    out = set()
    for email, seen in names.items():
        seen = list(seen)
        if any(scoring.person_names_conflict(a, b) for i, a in enumerate(seen) for b in seen[i + 1:]):
            out.add(email)
    for email, seen in employers.items():
        if len(seen) > 1:
            seen = list(seen)
            if any(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:]):
                out.add(email)
    return out


def _employer_of(email: str) -> Optional[str]:
    """The employer domain a normalised address names, None for webmail."""
    return _employer(nz.email_domain(email))


@functools.lru_cache(maxsize=65_536)
def _employer(domain: str) -> Optional[str]:
    """The employer domain an address at this domain names, None for webmail: far fewer domains than addresses."""
    domain = nz.registrable(domain)
    return None if nz.is_webmail(domain) else domain


@functools.lru_cache(maxsize=262_144)
def _identifying(raw: object) -> Optional[tuple[str, Optional[str]]]:
    """(normalised address, employer domain or None) of a raw address that identifies someone, else None."""
    # each raw address is seen here once per run: the normaliser's own memo would only be filled
    email = nz.normalise_email.__wrapped__(raw)
    if not email or nz.is_shared_inbox(email):
        return None
    return email, _employer_of(email)


def _identifying_emails(raws: Iterable) -> tuple[tuple[str, ...], frozenset[str]]:
    """A row's identifying addresses (normalised, no shared inbox) and the employer domains in them."""
    try:
        if len(raws) == 1:  # most rows: one address
            found = _identifying(raws[0])
            if found is None:
                return (), frozenset()
            return (found[0],), frozenset((found[1],)) if found[1] else frozenset()
        found = [f for f in map(_identifying, raws) if f]
    except TypeError:  # junk (unhashable) values: not memoised
        found = [f for f in map(_identifying.__wrapped__, raws) if f]
    return tuple(e for e, _ in found), frozenset(d for _, d in found if d)


# what a person row says besides its addresses, read in one C call: rows are bucketed by these
# values and their addresses before anything is normalised
_FACTS = attrgetter("name", "source", "company_source_type", "company_source_id", "company_name")
_DETAILS = attrgetter("phone", "title", "is_internal")
_PINNED = attrgetter("pinned")


def person_records(rows: list, context: CompanyContext,
                   phone_region: str = nz.DEFAULT_PHONE_REGION) -> list[scoring.PersonRecord]:
    """One record per row; identical rows share one record, normalised and parsed once."""
    slot_of: dict = {}  # raw row values -> index of the first row saying them
    firsts: list[int] = []
    slots: list[int] = []
    for i, row in enumerate(rows):
        try:
            raw = _DETAILS(row) + _FACTS(row) + tuple(row.emails)
            slot = slot_of.setdefault(raw, len(firsts))
        except TypeError:  # junk (unhashable) values: a row of its own
            slot = len(firsts)
        if slot == len(firsts):
            firsts.append(i)
        slots.append(slot)
    # the same addresses, names, employers, phones and titles recur across rows: each distinct
    # value is normalised once, through plain dicts (cheaper than the normalisers' own memos)
    emails_of, names_of, phones_of, titles_of = {}, {}, {}, {}
    parsed = []
    for i in firsts:
        row = rows[i]
        try:
            raw_emails = tuple(row.emails)
            found = emails_of.get(raw_emails)
            if found is None:
                found = emails_of[raw_emails] = _identifying_emails(raw_emails)
            name = names_of.get(row.name, False)
            if name is False:
                name = names_of[row.name] = nz.parse_person_name(row.name)
        except TypeError:  # junk (unhashable) values: not memoised
            found, name = _identifying_emails(row.emails), nz.parse_person_name(row.name)
        parsed.append((name, found[0], context.of(row, found[1]), found[1]))
    # each distinct fact once: the check is about which values meet, not how often; a pinned row
    # is kept out of the evidence, so its name does not make an address ambiguous for the others
    facts_seen = parsed
    if any(map(_PINNED, rows)):
        said_unpinned = {slot for slot, row in zip(slots, rows) if not row.pinned}
        facts_seen = [facts for slot, facts in enumerate(parsed) if slot in said_unpinned]
    ambiguous = _ambiguous_emails(list(dict.fromkeys(facts_seen)))
    same_record: dict = {}
    by_slot = []
    for i, facts in zip(firsts, parsed):
        row = rows[i]
        name, emails, companies, work = facts
        if ambiguous and not ambiguous.isdisjoint(emails):
            emails = [e for e in emails if e not in ambiguous]
            work = frozenset(d for d in map(_employer_of, emails) if d)
        try:
            phone = phones_of.get(row.phone, False)
            if phone is False:
                phone = phones_of[row.phone] = nz.normalise_phone(row.phone, phone_region)
            title = titles_of.get(row.title, False)
            if title is False:
                title = titles_of[row.title] = nz.normalise_title(row.title)
        except TypeError:
            phone, title = nz.normalise_phone(row.phone, phone_region), nz.normalise_title(row.title)
        # ``PersonRecord.signature()``'s values: one object per distinct record, whichever source
        # said it, built only when new (keys and ids are computed once per object)
        said = (name, frozenset(emails), work, phone, title, companies, bool(row.is_internal))
        rec = same_record.get(said)
        if rec is None:
            rec = same_record[said] = scoring.PersonRecord(i, *said)
        by_slot.append(rec)
    return [by_slot[s] for s in slots]
