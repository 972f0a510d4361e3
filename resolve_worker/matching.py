"""Entity resolution, pure: identities in, one mapping per identity (entity, confidence, evidence) out.

Companies are resolved first (shared website/email domains, legal-suffix-normalised and fuzzy
names), then persons (identifying emails, source links such as a Gong party's user, and fuzzy
names supported by company, phone and title), because a person's company is evidence for the
person. Each step: normalise (``normalise``), block (``blocking``), score pairs (``scoring``),
cluster best link first with vetoes (``clustering``). Manual decisions (pins, merges, splits)
are constraints every run applies. Entity ids are reused so they stay stable across runs.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Iterable, Optional

from common import gcpause
from resolve_worker import blocking, clustering, mappings, scoring, twins
from resolve_worker.records import CompanyContext as _CompanyContext  # noqa: F401 - tests use it
from resolve_worker.records import company_records as _company_records
from resolve_worker.records import person_records as _person_records
from resolve_worker import normalise as nz
from resolve_worker.normalise import (SHARED_LOCAL_PARTS, WEBMAIL, is_shared_inbox,  # noqa: F401 - API
                                      normalise_company_name, normalise_domain, normalise_email)

Key = tuple[str, str, str]

# Bump on any change to normalising, blocking, scoring, clustering or heads (heads.py) that could
# group or show identities already resolved differently: routine runs score only pairs that involve
# a new or changed identity, so the first run under new rules re-clusters every identity once
# (entities.py). This one: phones in E.164 by region and placeholders none; a manual merge admits
# only fitting names; an address's holders linked as a star and a chain.
RULES_VERSION = "2026-11-28.1"


def rules(phone_region: str) -> str:
    """What the mappings made now depend on, as stored beside them: the rules and the phone region."""
    return f"{RULES_VERSION} phone_region={phone_region}"


_key = attrgetter("source", "source_type", "source_id")  # IdentityRow.key without a Python call


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
    phone: Optional[str] = None
    title: Optional[str] = None
    company_name: Optional[str] = None
    linked_key: Optional[Key] = None  # the source itself says this is that identity (gong party -> user)
    is_internal: Optional[bool] = None
    changed: bool = False  # updated in its source since the last run: scored again like a new one

    @property
    def key(self) -> Key:
        return (self.source, self.source_type, self.source_id)


@dataclass(slots=True)
class Mapping:
    key: Key
    entity_type: str
    entity_id: str
    confidence: float
    method: str
    evidence: dict


@dataclass
class Constraints:
    """Manual decisions: groups that must be one entity (with its id) and groups kept apart."""

    must: list[tuple[list[Key], str]] = field(default_factory=list)
    cannot: list[tuple[list[Key], list[Key]]] = field(default_factory=list)


def resolve(rows: Iterable[IdentityRow], *, incremental: bool = False,
            constraints: Optional[Constraints] = None, pair_log: Optional[list] = None,
            phone_region: str = nz.DEFAULT_PHONE_REGION) -> list[Mapping]:
    """Cluster companies then persons; one mapping per identity.

    ``incremental``: identities that already have an entity keep it and stay together; only pairs
    involving a new identity are scored, so new identities attach to existing entities (and may
    join two of them when the evidence allows) or form new ones. ``pair_log``, when given, receives
    (key, key, confidence) of every scored pair (calibration). ``phone_region``: the country of
    phone numbers written without a country code (ISO 3166 alpha-2).
    """
    # in key order: greedy merges with vetoes, star links and twin representatives follow row order,
    # and Postgres returns rows in whatever order its heap holds them, so without this a run over
    # the same identities could group a few of them differently (6-12 groups of 3,840 at 10k)
    rows = sorted(rows, key=_key)
    constraints = constraints or Constraints()
    with gcpause.paused():  # a third of the run at 100k without it
        return _resolve(rows, incremental, constraints, pair_log, phone_region)


def _resolve(rows: list[IdentityRow], incremental: bool, constraints: Constraints,
             pair_log: Optional[list], phone_region: str) -> list[Mapping]:
    companies = [r for r in rows if r.entity_type == "company"]
    persons = [r for r in rows if r.entity_type == "person"]
    company_maps = _resolve_companies(companies, incremental, constraints, pair_log, phone_region)
    context = _CompanyContext(companies, company_maps)
    return company_maps + _resolve_persons(persons, context, incremental, constraints, pair_log, phone_region)


# ---------------------------------------------------------------------------- companies
def _resolve_companies(rows: list[IdentityRow], incremental: bool, constraints: Constraints,
                       pair_log: Optional[list], phone_region: str) -> list[Mapping]:
    all_rows, all_records = rows, _company_records(rows, phone_region)
    reps, rep_of, self_links = twins.collapse(rows, all_records, _self_link(scoring.score_companies),
                                              _protected(rows, constraints))
    rows, records = [all_rows[i] for i in reps], [all_records[i] for i in reps]
    exact: dict = defaultdict(list)
    fuzzy: dict = defaultdict(list)
    for i, (row, rec) in enumerate(zip(rows, records)):
        if row.pinned:
            continue
        for d in rec.domains:
            exact[("domain", d)].append(i)
        if rec.name:
            exact[("name", rec.name)].append(i)
            tokens = rec.name.split()
            # with the name's digits: "Acme Logistics 2" and "... 3" are vetoed apart anyway
            fuzzy[("nm", nz.phonetic(tokens[0]), nz.phonetic(tokens[1])[:3] if len(tokens) > 1 else "",
                   scoring.digits(rec.name))].append(i)
    return _cluster(rows, records, _summarise(scoring.CompanySummary, rows, records), exact, fuzzy,
                    [rec.name or "" for rec in records], scoring.score_companies, incremental, constraints,
                    "company", links=[], pair_log=pair_log,
                    twins=(twins.of_reps(all_rows, all_records, reps, rep_of, self_links), reps))


def _summarise(summary, rows: list[IdentityRow], records: list):  # noqa: ANN001, ANN202
    """Row i's summary for the clustering's veto: a pinned row says nothing (it merges with nobody)."""
    return lambda i: summary(None if rows[i].pinned else records[i])


def _self_link(score_fn):  # noqa: ANN001, ANN202
    """A record against itself: (confidence, (method, evidence)) when that link is accepted, else None."""
    def link(rec):  # noqa: ANN001, ANN202
        score, why = score_fn(rec, rec)
        conf = scoring.confidence(score)
        return (conf, (_method(why), why)) if conf >= scoring.THRESHOLD else None
    return link


def _protected(rows: list[IdentityRow], constraints: Constraints) -> set[Key]:
    """Keys that must stay their own node: named by a manual decision or by a source link."""
    out = {r.linked_key for r in rows if r.linked_key}
    for keys, _ in constraints.must:
        out.update(keys)
    for group_a, group_b in constraints.cannot:
        out.update(group_a)
        out.update(group_b)
    return out


def _person_name_blocks(rec: scoring.PersonRecord, fuzzy: dict, by_name: dict) -> list[list]:
    """The blocks (fuzzy, then name-only) a record's name and employers put it in (its phone's aside)."""
    blocks = []
    last_key, firsts, initial_key = _name_keys(rec.name)
    for ctx in rec.companies | rec.work_domains:
        blocks.append(fuzzy[("company_last", ctx, last_key)])
        for f in firsts:
            # with the last name's initial: a big employer's "Sarah"s would otherwise all meet
            blocks.append(fuzzy[("company_first", ctx, f, initial_key)])
    if rec.name.last:
        blocks.extend(by_name[("name", last_key, f)] for f in firsts)
    return blocks


@functools.lru_cache(maxsize=262_144)
def _name_keys(name: nz.PersonName) -> tuple[str, set[str], str]:
    """(last-name key, first-name keys, last initial key) of a name; fewer names than records."""
    # with the name's digits: numbered names ("Whitfield1", "Whitfield2") share a phonetic key
    # but are vetoed apart, so they need not meet (a big employer's block would grow with n²)
    numbers = scoring.digits(name.last) + "/" + scoring.digits(name.first)
    last_key = (nz.phonetic(name.last) if name.last else "?") + numbers
    return last_key, _first_keys(name.first), name.last[:1] + numbers


def _resolve_persons(rows: list[IdentityRow], context: _CompanyContext, incremental: bool,
                     constraints: Constraints, pair_log: Optional[list], phone_region: str) -> list[Mapping]:
    all_rows, all_records = rows, _person_records(rows, context, phone_region)
    reps, rep_of, self_links = twins.collapse(rows, all_records, _self_link(scoring.score_persons),
                                              _protected(rows, constraints))
    rows, records = [all_rows[i] for i in reps], [all_records[i] for i in reps]
    exact: dict = defaultdict(list)
    fuzzy: dict = defaultdict(list)
    # name-only blocks grow with the square of a common name's count: they only pair a record that
    # has no employer to go by (a phone-only party, a personal address) with the others
    by_name: dict = defaultdict(list)
    no_employer = [not (rec.companies or rec.work_domains) for rec in records]
    signatures: set = set()
    # the blocks a name at its employers joins, looked up once per distinct (name, employers):
    # colleagues' twins with another phone or title share them; blocks keep the order in which
    # rows first fill them
    blocks_of: dict[tuple, list] = {}
    for i, (row, rec) in enumerate(zip(rows, records)):
        if row.pinned:
            continue
        if rec.emails:
            for e in rec.emails:
                exact[("email", e)].append(i)
            signature = (rec.name, rec.emails, rec.phone, rec.companies)
            if signature in signatures and not incremental:
                continue  # an exact duplicate with an identifying email: its email links it already
            signatures.add(signature)
        if rec.phone:
            fuzzy[("phone", rec.phone)].append(i)
        if rec.name is None:
            continue
        name_at = (rec.name, rec.companies, rec.work_domains)
        blocks = blocks_of.get(name_at)
        if blocks is None:
            blocks = blocks_of[name_at] = _person_name_blocks(rec, fuzzy, by_name)
        for block in blocks:
            block.append(i)
    keys = list(map(_key, rows))
    index = dict(zip(keys, range(len(keys))))
    links = [(0.999, i, index[r.linked_key], ("source_link", [f"linked={'/'.join(r.linked_key)}"]))
             for i, r in enumerate(rows) if r.linked_key in index and not r.pinned
             and not rows[index[r.linked_key]].pinned]
    return _cluster(rows, records, _summarise(scoring.PersonSummary, rows, records), exact, fuzzy,
                    [rec.name.full if rec.name else "" for rec in records], scoring.score_persons,
                    incremental, constraints, "person", links=links, pair_log=pair_log,
                    name_blocks=(by_name, no_employer), keys=keys, index=index,
                    twins=(twins.of_reps(all_rows, all_records, reps, rep_of, self_links), reps))


def _first_keys(first: str) -> set[str]:
    if len(first) <= 1:
        return {first}
    return set(nz.canonical_first_names(first))


# ---------------------------------------------------------------------------- clustering
_method = mappings.method


def _cluster(rows, records, summarise, exact, fuzzy, names, score_fn, incremental,  # noqa: ANN001
             constraints: Constraints, entity_type: str, links: list, pair_log: Optional[list],
             name_blocks: Optional[tuple] = None, keys: Optional[list[Key]] = None,
             index: Optional[dict] = None, twins: tuple = (None, None)) -> list[Mapping]:
    n = len(rows)
    is_new = [r.existing_entity_id is None or r.changed for r in rows] if incremental else None
    if incremental:
        # like scored pairs, a source link between two identities already resolved was applied
        # (or vetoed) by an earlier run: applied again in another order it could move them
        links = [link for link in links if is_new[link[1]] or is_new[link[2]]]
    clusters = clustering.Clusters(n, summarise)
    keys = keys or list(map(_key, rows))
    index = index or dict(zip(keys, range(n)))
    _apply_constraints(clusters, rows, index, constraints)
    if incremental:
        _keep_existing_entities(clusters, rows)
    # every pair comes smaller index first (blocks list their members in index order), each
    # scored once, in index order: links of equal confidence are then applied in key order, not
    # in the order blocks were built, which follows sets of company entity ids (random when new)
    # and of strings (the hash seed), so a run could group the same identities differently
    pairs = [(a, b) for _, a, b in blocking.star_links(exact, is_new)]
    pairs += blocking.candidate_pairs(fuzzy, names, is_new)
    if name_blocks:
        pairs += blocking.candidate_pairs(name_blocks[0], names, is_new, need=name_blocks[1])
    scored: dict[tuple[int, int], tuple[float, list[str]]] = dict.fromkeys(sorted(pairs))
    confidence = scoring.confidence
    for pair in scored:
        a, b = pair
        result = scored[pair] = score_fn(records[a], records[b])
        links.append((confidence(result[0]), a, b, (None, result[1])))
    if pair_log is not None:
        pair_log.extend((keys[a], keys[b], conf) for conf, a, b, _ in links)
        for m, twin in enumerate(twins[0] or ()):  # collapsed pairs, as a row-by-row run scored them
            if twin:
                pair_log.extend((keys[m], t.key, twin[2][0]) for t in twin[0])
    applied = clustering.apply_links(clusters, links, scoring.THRESHOLD)
    best: dict[int, tuple[float, int, tuple]] = {}
    for (a, b), payload in applied.items():
        conf = _conf_of(payload, scored, a, b)
        for me, other in ((a, b), (b, a)):
            mine = best.get(me)
            if mine is None or conf > mine[0]:
                best[me] = (conf, other, payload)
    return mappings.build(rows, keys, clusters.groups(), clusters.anchor, best, entity_type, Mapping, *twins)


def _keep_existing_entities(clusters: clustering.Clusters, rows: list[IdentityRow]) -> None:
    """Members of one existing entity stay together, except where a manual decision parts them.

    A member a split (or another anchor) keeps apart from the others starts a part of its own; the
    others still join one another, so a split takes out only the identities it names (joining
    every member to the entity's first one left the rest in pieces when that one was split off).
    """
    parts: dict[str, list[int]] = {}  # existing entity id -> the first member of each part
    for i, r in enumerate(rows):
        if r.existing_entity_id and not r.pinned:
            heads = parts.setdefault(r.existing_entity_id, [])
            if not any(clusters.union(head, i, force=True) for head in heads):
                heads.append(i)


def _conf_of(payload, scored, a, b) -> float:  # noqa: ANN001
    result = scored.get((a, b))
    if payload[0] == "source_link":
        # the link the source asserts was applied: the scored evidence of the same pair (a bare
        # name, say) may be far below the threshold and must not stand for it
        return max(0.999, scoring.confidence(result[0])) if result is not None else 0.999
    if result is not None:
        return scoring.confidence(result[0])
    return 1.0


def _apply_constraints(clusters: clustering.Clusters, rows: list[IdentityRow], index: dict,
                       constraints: Constraints) -> None:
    for keys, entity_id in constraints.must:
        members = [index[k] for k in keys if k in index and not rows[index[k]].pinned]
        for m in members[1:]:
            clusters.union(members[0], m, manual=True)
        if members:
            clusters.set_anchor(members[0], entity_id)
    for tag, (group_a, group_b) in enumerate(constraints.cannot, start=1):
        clusters.add_cannot_link([index[k] for k in group_a if k in index],
                                 [index[k] for k in group_b if k in index], tag)
