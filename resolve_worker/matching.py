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
import gc
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Optional

from resolve_worker import blocking, clustering, scoring, twins
from resolve_worker import normalise as nz
from resolve_worker.normalise import (SHARED_LOCAL_PARTS, WEBMAIL, is_shared_inbox,  # noqa: F401 - API
                                      normalise_company_name, normalise_domain, normalise_email)

Key = tuple[str, str, str]


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


@dataclass
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
            constraints: Optional[Constraints] = None, pair_log: Optional[list] = None) -> list[Mapping]:
    """Cluster companies then persons; one mapping per identity.

    ``incremental``: identities that already have an entity keep it and stay together; only pairs
    involving a new identity are scored, so new identities attach to existing entities (and may
    join two of them when the evidence allows) or form new ones. ``pair_log``, when given, receives
    (key, key, confidence) of every scored pair (calibration).
    """
    rows = list(rows)
    constraints = constraints or Constraints()
    # a run allocates millions of small acyclic objects (keys, pairs, records): the cyclic
    # collector would rescan every live row again and again, a third of the run at 100k
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _resolve(rows, incremental, constraints, pair_log)
    finally:
        if collecting:
            gc.enable()


def _resolve(rows: list[IdentityRow], incremental: bool, constraints: Constraints,
             pair_log: Optional[list]) -> list[Mapping]:
    companies = [r for r in rows if r.entity_type == "company"]
    persons = [r for r in rows if r.entity_type == "person"]
    company_maps = _resolve_companies(companies, incremental, constraints, pair_log)
    context = _CompanyContext(companies, company_maps)
    return company_maps + _resolve_persons(persons, context, incremental, constraints, pair_log)


# ---------------------------------------------------------------------------- companies
def _company_record(i: int, row: IdentityRow) -> scoring.CompanyRecord:
    return scoring.CompanyRecord(i, nz.normalise_company_name(row.name), frozenset(nz.company_domains(row.domains)),
                                 nz.normalise_phone(row.phone))


def _resolve_companies(rows: list[IdentityRow], incremental: bool, constraints: Constraints,
                       pair_log: Optional[list]) -> list[Mapping]:
    all_rows, all_records = rows, _company_records(rows)
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
    summaries = [scoring.CompanySummary(None if row.pinned else rec) for row, rec in zip(rows, records)]
    maps = _cluster(rows, records, summaries, exact, fuzzy,
                    [rec.name or "" for rec in records], scoring.score_companies, incremental, constraints,
                    "company", links=[], pair_log=pair_log, weights=twins.weights(reps, rep_of))
    return twins.fan_out(maps, all_rows, all_records, reps, rep_of, self_links, Mapping)


def _company_records(rows: list[IdentityRow]) -> list[scoring.CompanyRecord]:
    """One record per row; identical rows share one record object (their twins collapse)."""
    out, same = [], {}
    for i, row in enumerate(rows):
        rec = _company_record(i, row)
        out.append(same.setdefault(rec.signature(), rec))
    return out


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


class _CompanyContext:
    """Where a person works, as company entity ids: by company identity, company name, email domain."""

    def __init__(self, rows: list[IdentityRow], maps: list[Mapping]):
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

    def of(self, row: IdentityRow, work_domains: Iterable[str]) -> frozenset[str]:
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


# ---------------------------------------------------------------------------- persons
def _ambiguous_emails(parsed: list[tuple]) -> set[str]:
    """Addresses that identify nobody: seen with names that cannot be one person (a team mailbox
    under a personal name), or a personal (webmail) address seen at two unrelated employers."""
    names: dict[str, set] = defaultdict(set)
    employers: dict[str, set] = defaultdict(set)
    for name, emails, companies, work in parsed:
        employer = companies | work
        for email in emails:
            if name is not None and len(names[email]) < 8:
                names[email].add(name)
            if employer and _email_facts(email)[1] is None and len(employers[email]) < 8:
                employers[email].add(employer)
    out = set()
    for email, seen in names.items():
        if len(seen) > 1:
            seen = list(seen)
            if any(scoring.person_names_conflict(a, b) for i, a in enumerate(seen) for b in seen[i + 1:]):
                out.add(email)
    for email, seen in employers.items():
        if len(seen) > 1:
            seen = list(seen)
            if any(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:]):
                out.add(email)
    return out


@functools.lru_cache(maxsize=262_144)
def _email_facts(email: str) -> tuple[bool, Optional[str]]:
    """(is a shared inbox, employer domain or None) of a normalised address."""
    domain = nz.registrable(nz.email_domain(email))
    return nz.is_shared_inbox(email), None if nz.is_webmail(domain) else domain


def _identifying_emails(raws: list) -> tuple[list[str], frozenset[str]]:
    """A row's identifying addresses (normalised, no shared inbox) and the employer domains in them."""
    emails = [e for e in map(nz.normalise_email, raws) if e and not _email_facts(e)[0]]
    return emails, frozenset(d for d in (_email_facts(e)[1] for e in emails) if d)


def _person_records(rows: list[IdentityRow], context: _CompanyContext) -> list[scoring.PersonRecord]:
    """One record per row; identical rows (a rep on every call, a contact in two tools: a third of
    the rows at 100k) share one record, normalised and parsed once."""
    parsed, parsed_of, emails_of = [], {}, {}
    for row in rows:
        try:  # the same addresses recur across sources; junk (unhashable) input is not memoised
            raw_emails = tuple(row.emails)
            emails, work = emails_of.get(raw_emails) or emails_of.setdefault(
                raw_emails, _identifying_emails(row.emails))
            raw = (row.name, raw_emails, row.source, row.company_source_type, row.company_source_id,
                   row.company_name)
            facts = parsed_of.get(raw)
        except TypeError:
            (emails, work), raw, facts = _identifying_emails(row.emails), None, None
        if facts is None:
            facts = (nz.parse_person_name(row.name), emails, context.of(row, work), work)
            if raw is not None:
                parsed_of[raw] = facts
        parsed.append(facts)
    # each distinct row once: the check is about which values meet, not how often
    ambiguous = _ambiguous_emails(list({id(f): f for f in parsed}.values()))
    records, record_of, same_record = [], {}, {}
    for i, (row, facts) in enumerate(zip(rows, parsed)):
        shape = (id(facts), row.phone, row.title, bool(row.is_internal))
        try:
            rec = record_of.get(shape)
        except TypeError:  # an unhashable phone or title: junk, normalised to None below
            shape, rec = None, None
        if rec is None:
            name, emails, companies, work = facts
            if ambiguous and not ambiguous.isdisjoint(emails):
                emails = [e for e in emails if e not in ambiguous]
                work = frozenset(d for d in (_email_facts(e)[1] for e in emails) if d)
            rec = scoring.PersonRecord(i, name, frozenset(emails), work, nz.normalise_phone(row.phone),
                                       nz.normalise_title(row.title), companies, bool(row.is_internal))
            # one object per distinct record, whichever source said it: keys and ids computed once
            rec = same_record.setdefault(rec.signature(), rec)
            if shape is not None:
                record_of[shape] = rec
        records.append(rec)
    return records


def _person_block_keys(rec: scoring.PersonRecord) -> tuple[list, list, list, tuple]:
    """(email keys, fuzzy keys, name-only keys, duplicate signature) of one record."""
    emails = [("email", e) for e in rec.emails]
    fuzzy, by_name = [], []
    if rec.phone:
        fuzzy.append(("phone", rec.phone))
    if rec.name is not None:
        last_key, firsts, initial_key = _name_keys(rec.name)
        for ctx in rec.companies | rec.work_domains:
            fuzzy.append(("company_last", ctx, last_key))
            for f in firsts:
                # with the last name's initial: a big employer's "Sarah"s would otherwise all meet
                fuzzy.append(("company_first", ctx, f, initial_key))
        if rec.name.last:
            by_name.extend(("name", last_key, f) for f in firsts)
    return emails, fuzzy, by_name, (rec.name, rec.emails, rec.phone, rec.companies)


@functools.lru_cache(maxsize=262_144)
def _name_keys(name: nz.PersonName) -> tuple[str, set[str], str]:
    """(last-name key, first-name keys, last initial key) of a name; fewer names than records."""
    # with the name's digits: numbered names ("Whitfield1", "Whitfield2") share a phonetic key
    # but are vetoed apart, so they need not meet (a big employer's block would grow with n²)
    numbers = scoring.digits(name.last) + "/" + scoring.digits(name.first)
    last_key = (nz.phonetic(name.last) if name.last else "?") + numbers
    return last_key, _first_keys(name.first), name.last[:1] + numbers


def _resolve_persons(rows: list[IdentityRow], context: _CompanyContext, incremental: bool,
                     constraints: Constraints, pair_log: Optional[list]) -> list[Mapping]:
    all_rows, all_records = rows, _person_records(rows, context)
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
    # by record (rows sharing a record share its keys): the block lists its rows join, each looked
    # up when a row first joins it, so blocks keep the order in which rows first fill them
    keys_of: dict[int, tuple] = {}
    blocks_of: dict[int, list] = {}
    for i, (row, rec) in enumerate(zip(rows, records)):
        if row.pinned:
            continue
        keys = keys_of.get(id(rec))
        if keys is None:
            email_keys, fuzzy_keys, name_keys, signature = _person_block_keys(rec)
            keys = keys_of[id(rec)] = ([exact[k] for k in email_keys], fuzzy_keys, name_keys, signature)
        email_blocks, fuzzy_keys, name_keys, signature = keys
        for block in email_blocks:
            block.append(i)
        if email_blocks and signature in signatures and not incremental:
            continue  # an exact duplicate with an identifying email: its email links it already
        signatures.add(signature)
        blocks = blocks_of.get(id(rec))
        if blocks is None:
            blocks = blocks_of[id(rec)] = [fuzzy[k] for k in fuzzy_keys] + [by_name[k] for k in name_keys]
        for block in blocks:
            block.append(i)
    keys = [r.key for r in rows]
    index = {k: i for i, k in enumerate(keys)}
    links = [(0.999, i, index[r.linked_key], ("source_link", [f"linked={'/'.join(r.linked_key)}"]))
             for i, r in enumerate(rows) if r.linked_key in index and not r.pinned
             and not rows[index[r.linked_key]].pinned]
    summaries = [scoring.PersonSummary(None if row.pinned else rec) for row, rec in zip(rows, records)]
    maps = _cluster(rows, records, summaries, exact, fuzzy,
                    [rec.name.full if rec.name else "" for rec in records], scoring.score_persons,
                    incremental, constraints, "person", links=links, pair_log=pair_log,
                    name_blocks=(by_name, no_employer), keys=keys, weights=twins.weights(reps, rep_of))
    return twins.fan_out(maps, all_rows, all_records, reps, rep_of, self_links, Mapping)


def _first_keys(first: str) -> set[str]:
    if len(first) <= 1:
        return {first}
    return set(nz.canonical_first_names(first))


# ---------------------------------------------------------------------------- clustering
_METHOD_BY_EVIDENCE = (("linked=", "source_link"), ("email=", "email_exact"), ("domain=", "domain_exact"),
                       ("name=", "name_exact"), ("phone=", "phone_exact"))


def _method(why: list[str]) -> str:
    kinds = {w.partition("=")[0] + "=" for w in why}  # "email=a@b.c" -> "email="
    for prefix, method in _METHOD_BY_EVIDENCE:
        if prefix in kinds:
            return method
    return "name_fuzzy"


def _cluster(rows, records, summaries, exact, fuzzy, names, score_fn, incremental,  # noqa: ANN001
             constraints: Constraints, entity_type: str, links: list, pair_log: Optional[list],
             name_blocks: Optional[tuple] = None, keys: Optional[list[Key]] = None,
             weights: Optional[list[int]] = None) -> list[Mapping]:
    n = len(rows)
    is_new = [r.existing_entity_id is None or r.changed for r in rows] if incremental else None
    clusters = clustering.Clusters(n, summaries)
    keys = keys or [r.key for r in rows]
    index = {k: i for i, k in enumerate(keys)}
    _apply_constraints(clusters, rows, index, constraints)
    if incremental:
        by_entity: dict[str, int] = {}
        for i, r in enumerate(rows):
            if r.existing_entity_id and not r.pinned:
                clusters.union(by_entity.setdefault(r.existing_entity_id, i), i, force=True)
    scored: dict[tuple[int, int], tuple[float, list[str]]] = {}
    # per kind of pair: (score and evidence, confidence, link payload)
    by_signature: dict[tuple[int, int], tuple[tuple[float, list[str]], float, tuple]] = {}
    signature = _signature_ids(records)
    pairs = [(a, b) for _, a, b in blocking.star_links(exact, is_new)]
    pairs += list(blocking.candidate_pairs(fuzzy, names, is_new))
    if name_blocks:
        pairs += list(blocking.candidate_pairs(name_blocks[0], names, is_new, need=name_blocks[1]))
    for a, b in pairs:
        if (a, b) in scored or (b, a) in scored:
            continue
        # identical records (a rep on every call) compare the same way: score each kind of pair once
        pair_kind = (signature[a], signature[b])
        kind = by_signature.get(pair_kind)
        if kind is None:
            result = score_fn(records[a], records[b])
            kind = by_signature[pair_kind] = (result, scoring.confidence(result[0]), (None, result[1]))
        scored[(a, b)] = kind[0]
        links.append((kind[1], a, b, kind[2]))
    if pair_log is not None:
        pair_log.extend((keys[a], keys[b], conf) for conf, a, b, _ in links)
    applied = clustering.apply_links(clusters, links, scoring.THRESHOLD)
    best: dict[int, tuple[float, int, tuple]] = {}
    for (a, b), payload in applied.items():
        conf = _conf_of(payload, scored, a, b)
        for me, other in ((a, b), (b, a)):
            mine = best.get(me)
            if mine is None or conf > mine[0]:
                best[me] = (conf, other, payload)
    return _mappings(rows, keys, clusters, best, entity_type, weights)


def _signature_ids(records: list) -> list[int]:
    """A small id per distinct record signature; rows sharing one record object share its id."""
    ids: dict = {}
    by_record: dict[int, int] = {}
    out = []
    for rec in records:
        sid = by_record.get(id(rec))
        if sid is None:
            sid = by_record[id(rec)] = ids.setdefault(rec.signature(), len(ids))
        out.append(sid)
    return out


def _conf_of(payload, scored, a, b) -> float:  # noqa: ANN001
    result = scored.get((a, b))
    if result is not None:
        return scoring.confidence(result[0])
    return 0.999 if payload[0] == "source_link" else 1.0


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


def _mappings(rows: list[IdentityRow], keys: list[Key], clusters: clustering.Clusters, best: dict,
              entity_type: str, weights: Optional[list[int]] = None) -> list[Mapping]:
    """``weights``: how many identities each row stands for (collapsed twins): bigger entities
    choose their existing id first, and an id counts once per identity."""
    if weights is None:
        groups = sorted(clusters.groups().items(), key=lambda kv: -len(kv[1]))
    else:
        groups = sorted(clusters.groups().items(), key=lambda kv: -sum(weights[m] for m in kv[1]))
    pinned_ids = {r.existing_entity_id for r in rows if r.pinned and r.existing_entity_id}
    taken: set[str] = set(pinned_ids)
    out: list[Mapping] = []
    method_of: dict[int, str] = {}  # by evidence list: pairs of one kind share theirs
    for root, members in groups:
        if len(members) == 1 and not rows[members[0]].pinned:  # most entities: one identity
            row = rows[members[0]]
            entity_id = clusters.anchor[root]
            if entity_id is None and row.existing_entity_id and row.existing_entity_id not in taken:
                entity_id = row.existing_entity_id
            entity_id = entity_id or str(uuid.uuid4())
            taken.add(entity_id)
            out.append(Mapping(keys[members[0]], entity_type, entity_id, 1.0, "singleton",
                               {"matched_on": [], "cluster_size": 1}))
            continue
        live = [m for m in members if not rows[m].pinned]
        if not live:
            for m in members:
                out.append(_pinned(rows[m], entity_type))
            continue
        entity_id = clusters.anchor[root]
        if entity_id is None:
            existing = [eid for m in live for eid in [rows[m].existing_entity_id] * (weights[m] if weights else 1)
                        if eid]
            if existing:
                entity_id = next((eid for eid, _ in Counter(existing).most_common() if eid not in taken), None)
        entity_id = entity_id or str(uuid.uuid4())
        taken.add(entity_id)
        for m in members:
            row = rows[m]
            if row.pinned:
                out.append(_pinned(row, entity_type))
            elif m in best and len(live) > 1:
                conf, other, (method, why) = best[m]
                if not method:
                    method = method_of.get(id(why))
                    if method is None:
                        method = method_of[id(why)] = _method(why)
                out.append(Mapping(keys[m], entity_type, entity_id, conf, method,
                                   {"matched_on": why, "linked_to": list(keys[other]),
                                    "cluster_size": len(live)}))
            elif len(live) > 1:
                out.append(Mapping(keys[m], entity_type, entity_id, 1.0, "manual" if clusters.anchor[root]
                                   else "existing", {"matched_on": [], "cluster_size": len(live)}))
            else:
                out.append(Mapping(keys[m], entity_type, entity_id, 1.0, "singleton",
                                   {"matched_on": [], "cluster_size": 1}))
    return out


def _pinned(row: IdentityRow, entity_type: str) -> Mapping:
    return Mapping(row.key, entity_type, row.existing_entity_id or str(uuid.uuid4()), 1.0, "manual",
                   {"pinned": True})
