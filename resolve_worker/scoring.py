"""Pair evidence and its combination into one confidence per link (Fellegi–Sunter style).

Each comparison adds a log-odds weight (positive: the values agree in a way that rarely happens
for two different people or companies; negative: they disagree in a way that rarely happens for
the same one). The sum starts from a prior and maps to a confidence with the logistic function.
The weights were set from the generator's labelled data and checked on fresh seeds; the
calibration table (confidence bucket -> observed precision) is in resolve_worker/README.md.

Strong negative evidence is also a *veto* (:func:`person_names_conflict`,
:func:`company_domains_conflict`): the clustering never joins two clusters holding a vetoed pair,
so one shared value cannot chain different people together.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Optional

from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz import fuzz

from resolve_worker import normalise as nz

THRESHOLD = 0.9  # a link is accepted at this confidence or above (calibrated: see README)
_PERSON_PRIOR = -4.0
_COMPANY_PRIOR = -3.0


@functools.lru_cache(maxsize=65_536)
def confidence(score: float) -> float:
    return min(0.9999, round(1.0 / (1.0 + math.exp(-max(min(score, 30.0), -30.0))), 4))


@dataclass(slots=True)
class PersonRecord:
    """What one person identity says, normalised once."""

    index: int
    name: Optional[nz.PersonName]
    emails: frozenset[str]  # identifying: normalised, not shared, not ambiguous
    work_domains: frozenset[str]  # employer domains from those emails
    phone: Optional[str]
    title: Optional[str]
    companies: frozenset[str] = field(default_factory=frozenset)  # company entity ids / names
    internal: bool = False  # our own staff: aliases at our domain are theirs, names are curated

    def signature(self) -> tuple:
        """Everything but the index, in field order (``records`` builds records from these values)."""
        return (self.name, self.emails, self.work_domains, self.phone, self.title, self.companies, self.internal)


@dataclass(slots=True)
class CompanyRecord:
    index: int
    name: Optional[str]  # normalised, legal suffixes off
    domains: frozenset[str]
    phone: Optional[str]

    def signature(self) -> tuple:
        return (self.name, self.domains, self.phone)


# ---------------------------------------------------------------------------- persons
@functools.lru_cache(maxsize=262_144)
def first_names_agree(a: str, b: str) -> bool:
    if not a or not b:
        return True
    if a == b:
        return True
    if len(a) == 1 or len(b) == 1:
        initial, other = (a, b) if len(a) == 1 else (b, a)
        # "R." is Robert's initial, so Bob's too: a nickname is written with its formal name's initial
        return other[0] == initial or (len(other) > 1 and initial in nz.formal_initials(other))
    if JaroWinkler.normalized_similarity(a, b) >= 0.93:
        return True  # a typo
    # one is a form of the other (bob/robert), or both shorten one formal name (bob/rob); two formal
    # names sharing a rare nickname in the genealogical list (robert/william: "bill") do not agree
    return a in nz.first_name_forms(b) or b in nz.first_name_forms(a) or \
        bool(nz.canonical_first_names(a) & nz.canonical_first_names(b))


def last_name_similarity(a: str, b: str) -> float:
    if not a or not b:
        return 1.0
    if a == b:
        return 1.0
    return JaroWinkler.normalized_similarity(a, b)


@functools.lru_cache(maxsize=262_144)
def person_names_conflict(a: Optional[nz.PersonName], b: Optional[nz.PersonName]) -> bool:
    """Two names that cannot be one person: different last names, or same last and other first."""
    if a is None or b is None:
        return False
    if digits(a.last) != digits(b.last) or digits(a.first) != digits(b.first):
        return True  # "Whitfield1" and "Whitfield2" are numbered apart on purpose
    if a.last and b.last and a.last != b.last:
        if OSA.distance(a.last, b.last) >= 3:
            return True  # "Whitfield" and "Whitfield-O'Brien": a prefix, not a typo
        if last_name_similarity(a.last, b.last) < 0.85 and nz.phonetic(a.last) != nz.phonetic(b.last):
            return True
    return bool(a.first and b.first) and not first_names_agree(a.first, b.first) \
        and not (a.last and b.last and a.first == b.last and a.last == b.first)


_DIGITS = re.compile(r"\D+")


@functools.lru_cache(maxsize=262_144)
def digits(text: str) -> str:
    """The digits of a name, in order (numbered names are different people or companies)."""
    return _DIGITS.sub("", text)


def score_persons(a: PersonRecord, b: PersonRecord) -> tuple[float, list[str]]:
    """Log-odds that two person identities are one person, and the evidence behind it."""
    score, why = _PERSON_PRIOR, []
    shared = a.emails & b.emails
    if shared:
        score += 12.0
        why.append(f"email={min(shared)}")
    if a.phone and b.phone:
        if a.phone == b.phone:
            score += 6.5
            why.append(f"phone={a.phone}")
        else:
            score -= 0.5
    if a.name and b.name:
        name_score, name_why = _name_weight(a.name, b.name)
        score += name_score
        why.append(name_why)
    same_company = (a.companies & b.companies) or (a.work_domains & b.work_domains)
    if same_company:
        score += 2.5
        why.append(f"company={min(same_company)}")
    elif a.companies and b.companies and not shared:
        score -= 3.0
        why.append("different_company")
    elif a.work_domains and b.work_domains and not shared:
        score -= 3.0
        why.append("different_email_domain")
    if not shared and not (a.internal and b.internal) and (a.work_domains & b.work_domains) \
            and _different_work_addresses(a, b):
        score -= 5.0
        why.append("different_work_email_same_domain")
    if a.title and b.title and a.title == b.title:
        score += 0.5
        why.append(f"title={a.title}")
    return score, why


def _different_work_addresses(a: PersonRecord, b: PersonRecord) -> bool:
    common = a.work_domains & b.work_domains
    mine = {e for e in a.emails if nz.email_domain(e) in common}
    theirs = {e for e in b.emails if nz.email_domain(e) in common}
    # one person's aliases (john.smith@, jsmith@) meet in one record and join through it
    return bool(mine and theirs and not mine & theirs)


@functools.lru_cache(maxsize=262_144)
def _name_weight(a: nz.PersonName, b: nz.PersonName) -> tuple[float, str]:
    if person_names_conflict(a, b):
        return -9.0, "name_conflict"
    if a.full == b.full and a.first and a.last:
        return 5.0, f"name={a.full}"
    if a.first and b.first and a.last == b.first and a.first == b.last:
        return 4.0, "name_swapped"
    last = last_name_similarity(a.last, b.last)
    if not a.last or not b.last:
        return (1.0, "first_name_only") if a.first == b.first else (0.3, "first_name_compatible")
    if a.first == b.first:
        return (4.0, f"name_fuzzy={round(last, 3)}") if last >= 0.9 else (2.5, "last_name_phonetic")
    if len(a.first) == 1 or len(b.first) == 1:
        return (2.0, "initial+last") if last >= 0.97 else (1.0, "initial+last_fuzzy")
    if a.first in nz.first_name_forms(b.first):
        return (4.0, "nickname+last") if last >= 0.97 else (3.0, "nickname+last_fuzzy")
    return (3.0, "first_fuzzy+last") if last >= 0.97 else (2.0, "first_fuzzy+last_fuzzy")


# ---------------------------------------------------------------------------- companies
@functools.lru_cache(maxsize=262_144)
def _domain_label(domain: str) -> str:
    return domain.split(".", 1)[0]


def company_domains_conflict(a: CompanyRecord, b: CompanyRecord) -> bool:
    """Both have domains, none shared, and the domains do not fit both names (cyberdyne.io and
    cyberdynehq.com fit "Cyberdyne"; summit.com and peakfreight.io do not)."""
    if digits(a.name or "") != digits(b.name or ""):
        return True  # "Acme Logistics 2" and "Acme Logistics 3"
    if not a.domains or not b.domains or a.domains & b.domains:
        return False
    if _name_fits_domains(a.name, b.domains) and _name_fits_domains(b.name, a.domains):
        return False
    labels_a = {_domain_label(d) for d in a.domains}
    labels_b = {_domain_label(d) for d in b.domains}
    return not any(x.startswith(y) or y.startswith(x) for x in labels_a for y in labels_b)


def _name_fits_domains(name: Optional[str], domains: frozenset[str]) -> bool:
    """Whether a domain could be this company's: it holds the name or its first word (tailspincorp.com
    for "Tailspin Logistics")."""
    if not name:
        return False
    slug = name.replace(" ", "").replace("&", "")
    root = name.split()[0]
    return any(slug in label or label in slug or (len(root) >= 4 and root in label)
               for label in map(_domain_label, domains))


def score_companies(a: CompanyRecord, b: CompanyRecord) -> tuple[float, list[str]]:
    score, why = _COMPANY_PRIOR, []
    shared = a.domains & b.domains
    if shared:
        score += 10.0
        why.append(f"domain={min(shared)}")
        if a.name and b.name and a.name != b.name and fuzz.token_sort_ratio(a.name, b.name) < 90:
            score -= 6.0  # a parent's domain shared by differently named companies
            why.append("different_names_same_domain")
    elif company_domains_conflict(a, b):
        score -= 8.0
        why.append("different_domains")
    if a.name and b.name:
        if a.name == b.name:
            score += 6.0
            why.append(f"name={a.name}")
        else:
            ratio = fuzz.token_sort_ratio(a.name, b.name) / 100
            if digits(a.name) != digits(b.name):
                score -= 8.0
            elif ratio >= 0.95:
                score += 5.5
                why.append(f"name_fuzzy={ratio:.3f}")
            elif ratio >= 0.9:
                score += 4.0
                why.append(f"name_fuzzy={ratio:.3f}")
            elif ratio < 0.6:
                score -= 2.0
    if a.phone and b.phone and a.phone == b.phone:
        score += 3.0
        why.append(f"phone={a.phone}")
    return score, why


class PersonSummary:
    """What a cluster of person identities says, for the no-chaining veto."""

    __slots__ = ("names", "work", "manual", "core")

    def __init__(self, rec: Optional[PersonRecord]):
        self.manual = False  # a person joined these identities: their names are all this entity's
        self.core: list[nz.PersonName] = []  # the names of the identities a person joined
        self.names = [rec.name] if rec and rec.name else []
        self.work: dict[str, set[str]] = {}
        if rec and rec.work_domains and not rec.internal:
            for e in rec.emails:
                d = nz.email_domain(e)
                if d in rec.work_domains:
                    self.work.setdefault(d, set()).add(e)

    def conflicts(self, other: "PersonSummary") -> bool:
        if self.manual or other.manual:
            # a manual merge may hold names that conflict (a name change): a newcomer must fit one
            # of the names the person merged, not one that evidence brought in since, which would
            # let it chain (Jane Smith + Jane Doe, then J. Smith, then John Smith)
            return _unfit(self, other, person_names_conflict) or _unfit(other, self, person_names_conflict)
        names, others = self.names, other.names
        if len(names) == 1 and len(others) == 1:  # most merges: two single-name clusters
            if person_names_conflict(names[0], others[0]):
                return True
        elif any(person_names_conflict(x, y) for x in names for y in others):
            return True
        # two different addresses at one employer, never seen together: two people
        return bool(self.work and other.work) and \
            any(d in other.work and not emails & other.work[d] for d, emails in self.work.items())

    def merged_by_hand(self) -> None:
        """A person joined this cluster's identities: its names so far are the entity's own."""
        self.manual = True
        self.core = list(self.names)

    def absorb(self, other: "PersonSummary") -> None:
        self.manual = self.manual or other.manual
        if other.core:  # only a merge a person made has any
            self.core.extend(n for n in other.core if n not in self.core)
        for n in other.names:
            if len(self.names) < 12 and n not in self.names:
                self.names.append(n)
        for d, emails in other.work.items():
            self.work.setdefault(d, set()).update(emails)


def _unfit(merged, other, conflict) -> bool:  # noqa: ANN001
    """Whether ``other`` holds a value that conflicts with every value a person merged into
    ``merged`` (never, when no person merged it, or the merge said nothing to compare)."""
    core = merged.core
    if not merged.manual or not core:
        return False
    theirs = other.names if isinstance(other, PersonSummary) else other.records
    return any(all(conflict(mine, value) for mine in core) for value in theirs)


class CompanySummary:
    __slots__ = ("records", "manual", "core")

    def __init__(self, rec: Optional[CompanyRecord]):
        self.manual = False
        self.core: list[CompanyRecord] = []  # the records of the identities a person joined
        self.records = [rec] if rec else []

    def conflicts(self, other: "CompanySummary") -> bool:
        if self.manual or other.manual:  # as for persons: fit one record the person merged
            return _unfit(self, other, company_domains_conflict) or _unfit(other, self, company_domains_conflict)
        return any(company_domains_conflict(x, y) for x in self.records for y in other.records)

    def merged_by_hand(self) -> None:
        self.manual = True
        self.core = list(self.records)

    def absorb(self, other: "CompanySummary") -> None:
        self.manual = self.manual or other.manual
        if other.core:
            self.core.extend(r for r in other.core if r not in self.core)
        for r in other.records:
            if len(self.records) < 12:
                self.records.append(r)
