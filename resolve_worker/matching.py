"""Entity resolution rules, pure: identities in, clusters with confidence and evidence out.

This is the deterministic core: persons by normalised email, companies by non-webmail domain or
normalised legal name. Identities sharing evidence are joined with union-find; an existing entity
id is kept when a cluster already has one, so ids stay stable across runs. The fuzzy layer
(names, nicknames, phonetics) builds on these clusters in the entity-resolution issue.
"""
from __future__ import annotations

import re
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional

# Addresses many people share never identify one person.
SHARED_LOCAL_PARTS = frozenset({"sales", "support", "info", "hello", "contact", "admin", "team", "billing",
                                "noreply", "no-reply", "help", "office", "marketing", "hr", "jobs"})
WEBMAIL = frozenset({"gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com", "live.com",
                     "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "msn.com"})
# Legal forms, removed only at the end of a name ("Co-op Bank" keeps its "Co").
_LEGAL = re.compile(r"((^|\s+)(incorporated|inc|llc|l\.l\.c|ltd|limited|gmbh|corp|corporation|co|company|plc|sa|ag|bv)\.?)+$")


@dataclass
class IdentityRow:
    source: str
    source_type: str
    source_id: str
    entity_type: str
    name: Optional[str] = None
    emails: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    company_source_type: Optional[str] = None
    company_source_id: Optional[str] = None
    existing_entity_id: Optional[str] = None
    pinned: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.source_type, self.source_id)


@dataclass
class Mapping:
    key: tuple[str, str, str]
    entity_type: str
    entity_id: str
    confidence: float
    method: str
    evidence: dict


def normalise_email(raw: Optional[str]) -> Optional[str]:
    if not raw or "@" not in raw:
        return None
    local, _, domain = raw.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    if not local or not domain or "." not in domain:
        return None
    return f"{local}@{domain}"


def is_shared_inbox(email: str) -> bool:
    return email.split("@", 1)[0] in SHARED_LOCAL_PARTS


def normalise_domain(raw: Optional[str]) -> Optional[str]:
    if not raw:
        return None
    value = raw.strip().lower()
    value = re.sub(r"^[a-z]+://", "", value).split("/", 1)[0].split("@")[-1]
    value = value.removeprefix("www.")
    return value if "." in value else None


def normalise_company_name(raw: Optional[str]) -> Optional[str]:
    if not raw:
        return None
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9.]+", " ", text.replace(",", " ")).strip()
    text = _LEGAL.sub("", text).replace(".", " ")
    text = re.sub(r"\s+", " ", text).strip()
    return text or None


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, x):  # noqa: ANN001, ANN201
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b) -> None:  # noqa: ANN001
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def resolve(rows: Iterable[IdentityRow]) -> list[Mapping]:
    """Cluster persons by email and companies by domain/name; one mapping per identity."""
    rows = list(rows)
    persons = [r for r in rows if r.entity_type == "person"]
    companies = [r for r in rows if r.entity_type == "company"]
    mappings = _cluster(companies, _company_evidence, "company")
    mappings += _cluster(persons, _person_evidence, "person")
    return mappings


def _person_evidence(row: IdentityRow) -> list[tuple[str, str]]:
    out = []
    for raw in row.emails:
        email = normalise_email(raw)
        if email and not is_shared_inbox(email):
            out.append(("email", email))
    return out


def _company_evidence(row: IdentityRow) -> list[tuple[str, str]]:
    out = [("domain", d) for d in (normalise_domain(x) for x in row.domains) if d and d not in WEBMAIL]
    name = normalise_company_name(row.name)
    if name:
        out.append(("name", name))
    return out


def _cluster(rows: list[IdentityRow], evidence_of, entity_type: str) -> list[Mapping]:  # noqa: ANN001
    uf = _UnionFind()
    first_by_value: dict[tuple[str, str], tuple] = {}
    evidence: dict[tuple, list[tuple[str, str]]] = {}
    for row in rows:
        uf.find(row.key)
        if row.pinned:
            continue  # a manual decision is never moved by evidence
        evidence[row.key] = evidence_of(row)
        for item in evidence[row.key]:
            other = first_by_value.setdefault(item, row.key)
            if other != row.key:
                uf.union(other, row.key)
    members: dict[tuple, list[IdentityRow]] = {}
    for row in rows:
        members.setdefault(uf.find(row.key), []).append(row)
    out: list[Mapping] = []
    for group in members.values():
        existing = Counter(r.existing_entity_id for r in group if r.existing_entity_id and not r.pinned)
        entity_id = existing.most_common(1)[0][0] if existing else str(uuid.uuid4())
        for row in group:
            if row.pinned and row.existing_entity_id:
                out.append(Mapping(row.key, entity_type, row.existing_entity_id, 1.0, "manual", {"pinned": True}))
                continue
            shared = _shared(row, group, evidence)
            method = shared[0][0] + "_exact" if shared else "singleton"
            confidence = 0.99 if shared else 1.0
            out.append(Mapping(row.key, entity_type, entity_id, confidence, method,
                               {"matched_on": [f"{k}={v}" for k, v in shared[:5]], "cluster_size": len(group)}))
    return out


def _shared(row: IdentityRow, group: list[IdentityRow], evidence: dict) -> list[tuple[str, str]]:
    mine = set(evidence.get(row.key, []))
    if len(group) == 1 or not mine:
        return []
    others = set()
    for other in group:
        if other.key != row.key:
            others.update(evidence.get(other.key, []))
    return sorted(mine & others)
