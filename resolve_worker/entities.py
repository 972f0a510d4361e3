"""Phase 4 against Postgres: load identities, resolve, write entities and mappings, link interactions.

One transaction: mappings, entities and interaction links change together, so a reader never sees
an interaction linked to an entity that does not exist yet.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Optional

import orjson
import sqlalchemy as sa

from common import bulk, db, gcpause, timeline_cache
from common.settings import Settings
from resolve_worker import cache, heads, matching
from resolve_worker import links as resolve_links
from resolve_worker import overrides as resolve_overrides

log = logging.getLogger("payready.resolve")

Key = tuple[str, str, str]


@dataclass
class ResolveStats:
    identities: int = 0
    persons: int = 0
    companies: int = 0
    links: int = 0
    changed: int = 0  # mappings inserted or rewritten (unchanged ones are not, even in a full run)
    full: bool = False  # every identity re-clustered: asked for, or the rules differ from the stored ones
    unchanged: bool = False  # nothing to resolve since the last run: matching skipped, queued interactions linked
    timelines_invalidated: int = 0
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)  # wall seconds per step, in run order


class _Stopwatch:
    """Wall seconds per step of one run, for its log line and its stats."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = round(self.laps.get(step, 0.0) + now - self._last, 3)
        self._last = now


def resolve_all(settings: Settings, full: bool = False) -> ResolveStats:
    """Resolve identities into entities. Incremental by default: identities without a mapping are
    scored against the existing entities (which keep their members); ``full`` re-clusters all."""
    # ~100k rows and mappings alive at once; freed when the run returns, before collection resumes
    with gcpause.paused():
        return _resolve_all(settings, full)


def _resolve_all(settings: Settings, full: bool) -> ResolveStats:
    started = time.perf_counter()
    watch = _Stopwatch()
    if not full:
        unchanged = _link_only(settings, watch, started)
        if unchanged:
            return unchanged
    with db.transaction(settings) as conn:
        conn.execute(sa.text(_LOCK_SQL))
        overrides, seen = _load_overrides(conn)
        constraints, pins = resolve_overrides.constraints_and_pins(overrides)
        rows, stored, unresolved = _load(conn, pins)
        rules = matching.rules(settings.default_phone_region)
        applied = conn.execute(sa.text("SELECT rules FROM resolve_rules_applied")).scalar()
        if not full and applied != rules:
            # mappings made under other rules (or before they were recorded) are re-examined once
            log.info("resolve rules are %r, mappings were made by %r: every identity re-clustered", rules, applied)
            full = True
        watch.lap("load")
        before = {r.key: r.existing_entity_id for r in rows}
        mappings = matching.resolve(rows, incremental=not full, constraints=constraints,
                                    phone_region=settings.default_phone_region)
        watch.lap("match")
        changed = [m for m in mappings if before.get(m.key) != m.entity_id
                   or m.key in pins or (full and m.method != "manual")]
        by_key = {r.key: r for r in rows}
        written = _write_mappings(conn, changed, pinned={k for k in pins})
        watch.lap("mappings")
        touched = None if full else _touched(mappings, by_key, stored)
        heads_changed = _write_entities(conn, mappings, by_key, touched)
        heads_changed |= _delete_orphans(conn, touched)
        watch.lap("entities")
        # against the stored mapping: a pin's run moves its identity though ``before`` names the pin
        remapped = [m.key for m in mappings if stored.get(m.key) != m.entity_id]
        links, links_changed = resolve_links.link(conn, full, remapped, heads_changed, len(rows))
        _mark_resolved(conn, unresolved)
        conn.execute(sa.text(_APPLIED_SQL), {"r": rules, "o": seen})
        watch.lap("links")
        stats = ResolveStats(identities=len(rows), links=links, changed=written, full=full,
                             persons=len({m.entity_id for m in mappings if m.entity_type == "person"}),
                             companies=len({m.entity_id for m in mappings if m.entity_type == "company"}))
    watch.lap("commit")
    moved = [m.key for m in changed if before.get(m.key) is not None]
    if moved:
        cache.invalidate(settings, moved)
    stale = heads_changed | links_changed
    stats.timelines_invalidated = len(stale)
    timeline_cache.stale_after_commit(settings, stale, "resolve")  # after the commit: a refill sees the new links
    watch.lap("caches")
    stats.seconds = round(time.perf_counter() - started, 3)
    stats.phases = watch.laps
    log.info("resolve %s identities=%d persons=%d companies=%d changed=%d links=%d ms=%.0f (%s)",
             "full" if full else "routine", stats.identities,
             stats.persons, stats.companies, stats.changed, stats.links, stats.seconds * 1000,
             " ".join(f"{k}={v * 1000:.0f}" for k, v in watch.laps.items()))
    return stats


_LOCK_SQL = "LOCK TABLE entity_mappings IN SHARE ROW EXCLUSIVE MODE"  # one resolver at a time
# when the rules were first applied; the decisions applied (their fingerprint) kept up to date
_APPLIED_SQL = (
    "INSERT INTO resolve_rules_applied AS t (singleton, rules, overrides) VALUES (true, :r, :o) "
    "ON CONFLICT (singleton) DO UPDATE SET rules = EXCLUDED.rules, overrides = EXCLUDED.overrides, "
    "applied_at = CASE WHEN t.rules = EXCLUDED.rules THEN t.applied_at ELSE now() END "
    "WHERE (t.rules, t.overrides) IS DISTINCT FROM (EXCLUDED.rules, EXCLUDED.overrides)")
# an identity a routine run would score: new or changed since the last run (the ingest writer
# clears ``resolved``), or without a mapping (the only other way a run would treat it as new)
_UNRESOLVED_SQL = (
    "SELECT EXISTS (SELECT FROM source_identities si WHERE si.entity_type IN ('person', 'company') "
    "AND (NOT si.resolved OR NOT EXISTS (SELECT FROM entity_mappings em WHERE em.source = si.source "
    "AND em.source_type = si.source_type AND em.source_id = si.source_id)))")
_COUNTS_SQL = ("SELECT count(*), count(DISTINCT entity_id) FILTER (WHERE entity_type = 'person'), "
               "count(DISTINCT entity_id) FILTER (WHERE entity_type = 'company') FROM entity_mappings")


def _link_only(settings: Settings, watch: _Stopwatch, started: float) -> Optional[ResolveStats]:
    """A routine run with nothing to resolve: the same identities, decisions and rules as the run
    that made the stored mappings, so matching them again would give those mappings back (a second
    run changes nothing: tests/unit/test_resolve_properties.py). Only the interactions the ingest
    queued since then are linked. None, having written nothing, when there is something to resolve."""
    with db.transaction(settings) as conn:
        conn.execute(sa.text(_LOCK_SQL))
        ids = conn.execute(sa.text("SELECT id FROM entity_overrides ORDER BY id")).scalars().all()
        seen = _decisions_seen(ids)
        applied = conn.execute(sa.text("SELECT rules, overrides FROM resolve_rules_applied")).first()
        if applied != (matching.rules(settings.default_phone_region), seen) or \
                conn.execute(sa.text(_UNRESOLVED_SQL)).scalar():
            return None
        watch.lap("check")
        links, links_changed = resolve_links.link(conn, False, [], ())
        identities, persons, companies = conn.execute(sa.text(_COUNTS_SQL)).one()
        watch.lap("links")
    watch.lap("commit")
    timeline_cache.stale_after_commit(settings, links_changed, "resolve")
    watch.lap("caches")
    stats = ResolveStats(identities=identities, persons=persons, companies=companies, links=links,
                         unchanged=True, timelines_invalidated=len(links_changed),
                         seconds=round(time.perf_counter() - started, 3), phases=watch.laps)
    log.info("resolve unchanged identities=%d persons=%d companies=%d links=%d ms=%.0f (%s)",
             identities, persons, companies, links, stats.seconds * 1000,
             " ".join(f"{k}={v * 1000:.0f}" for k, v in watch.laps.items()))
    return stats


# text, not jsonb or uuid: orjson parses the arrays several times faster than psycopg2's json
# typecaster, and ids stay the text the mappings carry (no uuid.UUID per row)
_LOAD_SQL = (
    "SELECT si.source, si.source_type, si.source_id, si.entity_type, si.name, si.emails::text, si.domains::text, "
    "si.company_source_type, si.company_source_id, em.entity_id::text, COALESCE(em.pinned, false), "
    "si.phone, si.title, si.company_name, si.is_internal, (si.attributes -> 'linked_identity')::text, "
    "NOT si.resolved, CASE WHEN NOT si.resolved THEN si.xmin::text END "
    "FROM source_identities si LEFT JOIN entity_mappings em USING (source, source_type, source_id) "
    "WHERE si.entity_type IN ('person', 'company')")


def _load(conn: sa.engine.Connection, pins: dict) -> tuple[list[matching.IdentityRow], dict[Key, Optional[str]],
                                                          set[str]]:
    """The identities to resolve, the entity each one's stored mapping names (a row's
    ``existing_entity_id`` is its pin's entity when it has one: what the matcher must keep), and the
    row versions (``xmin``) of the new and changed ones, for ``_mark_resolved``."""
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.execute(_LOAD_SQL)
        fetched = cur.fetchall()
    rows = []
    stored = {}
    unresolved = set()
    loads, row = orjson.loads, matching.IdentityRow
    for (source, source_type, source_id, entity_type, name, emails, domains, company_source_type,
         company_source_id, entity_id, pinned, phone, title, company_name, is_internal, linked,
         changed, version) in fetched:
        key = (source, source_type, source_id)
        stored[key] = entity_id
        if changed:
            unresolved.add(version)
        linked = loads(linked) if linked else None
        rows.append(row(
            source, source_type, source_id, entity_type, name, list(loads(emails) or ()) if emails else [],
            list(loads(domains) or ()) if domains else [], company_source_type, company_source_id,
            pins.get(key) or entity_id, pinned or key in pins, phone, title, company_name,
            (linked.get("source"), linked.get("source_type"), linked.get("source_id"))
            if isinstance(linked, dict) else None, is_internal, changed))
    return rows, stored, unresolved


# a row's version is the transaction that wrote it (``xmin``): a transaction whose rows the load
# saw had committed, so a row written since carries another one; one array of the few writers
# (ingest batches) instead of a join on 100k keys (0.5-0.8 s more on a first run, measured)
_MARK_RESOLVED_SQL = ("UPDATE source_identities SET resolved = true "
                      "WHERE NOT resolved AND xmin::text = ANY(CAST(:versions AS text[]))")


def _mark_resolved(conn: sa.engine.Connection, versions: set[str]) -> None:
    """The new and changed identities this run loaded are resolved, unless the ingest wrote them
    again since (another row version): those stay for the next run, which would otherwise never
    score their new values (``WHERE NOT resolved`` alone marked them too)."""
    if versions:
        conn.execute(sa.text(_MARK_RESOLVED_SQL), {"versions": sorted(versions)})


def _decisions_seen(ids: list[int]) -> str:
    """The fingerprint of the manual decisions a run applies (``resolve_rules_applied.overrides``)."""
    return f"{len(ids)}:{hashlib.sha256(','.join(map(str, ids)).encode()).hexdigest()[:16]}"


def _load_overrides(conn: sa.engine.Connection) -> tuple[list[resolve_overrides.Override], str]:
    """The manual decisions, oldest first, and a fingerprint of their ids: from the rows this run
    applies, not from a second query, which could see a decision committed in between."""
    rows = conn.execute(sa.text("SELECT id, action, entity_type, entity_id::text AS entity_id, identity_keys, "
                                "apart_keys FROM entity_overrides ORDER BY id")).mappings().all()
    seen = _decisions_seen([r["id"] for r in rows])
    return [resolve_overrides.Override(r["action"], r["entity_type"], r["entity_id"],
                                       [resolve_overrides.as_key(k) for k in r["identity_keys"]],
                                       [resolve_overrides.as_key(k) for k in r["apart_keys"]]) for r in rows], seen


@dataclass(frozen=True)
class Touched:
    """What a routine run changed, which is all an entity's head can depend on: ``entities`` gained,
    lost or hold a member whose values changed; ``moved`` identities now map elsewhere."""
    entities: set[str]
    moved: set[Key]


def _touched(mappings: list[matching.Mapping], by_key: dict, stored: dict[Key, Optional[str]]) -> Touched:
    moved = {m.key for m in mappings if stored.get(m.key) != m.entity_id}
    changed = moved | {m.key for m in mappings if by_key[m.key].changed}
    entities = {m.entity_id for m in mappings if m.key in changed}
    return Touched(entities | {stored[k] for k in changed if stored.get(k)}, moved)


def _write_entities(conn: sa.engine.Connection, mappings: list[matching.Mapping], by_key: dict,
                    touched: Optional[Touched] = None) -> set[str]:
    """Upsert persons (head and staff mark) and companies; the ids of those inserted or changed (their
    timeline heads). With ``touched`` (a routine run), only the heads that can differ from the
    stored ones are computed and sent:

    * a company's head is its members' values: only a touched company's can change;
    * a person's is its members' values, the company each member's company identity maps to, else
      the company that claims most its addresses' domains: a touched person, one whose member names
      a moved company identity, or one with an address at a domain whose claims changed. A domain's
      claims change only through a member of a touched company: one it had (in the company's stored
      ``domains``, read before the upsert) or has now.

    So a change of the head rules themselves (``heads.py``) reaches stored heads only by a full
    run: such a change bumps ``matching.RULES_VERSION``, which makes the next run a full one."""
    if touched is not None and not touched.entities:  # nothing moved or changed: no head can differ
        return set()
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for m in mappings:
        groups[(m.entity_type, m.entity_id)].append(by_key[m.key])
    company_of_identity = {m.key: m.entity_id for m in mappings if m.entity_type == "company"}
    domain_claims = []
    company_rows = []
    for (etype, eid), members in groups.items():
        if etype != "company":
            continue
        member_domains = [{d for d in map(matching.normalise_domain, r.domains) if d and d not in matching.WEBMAIL}
                          for r in members]
        domain_claims += [(d, eid) for ds in member_domains for d in ds]
        if touched is None or eid in touched.entities:
            domains = sorted(set().union(*member_domains))
            company_rows.append({"id": eid, "name": heads.company_name(r.name for r in members),
                                 "primary_domain": domains[0] if domains else None, "domains": domains})
    company_by_domain = heads.company_by_domain(domain_claims)
    reclaimed = None if touched is None else _reclaimed_domains(conn, touched, company_rows)
    person_rows = []
    for (etype, eid), members in groups.items():
        if etype != "person":
            continue
        emails = [e for r in members for e in (matching.normalise_email(x) for x in r.emails) if e]
        if reclaimed is not None and eid not in touched.entities and not any(
                (r.source, r.company_source_type, r.company_source_id) in touched.moved for r in members) and not any(
                e.split("@")[1] in reclaimed for e in emails):
            continue
        # every choice below is made from the members' values, not their order (heads.py)
        company = heads.most_common_id(company_of_identity.get((r.source, r.company_source_type, r.company_source_id))
                                       for r in members if r.company_source_id)
        if company is None:
            company = heads.most_common_id(company_by_domain.get(e.split("@")[1]) for e in emails)
        # staff: any member identity says so (was a statement over every person and mapping after
        # the upsert: 0.6-1.0 s of each run at 100k identities, for a value the members carry)
        person_rows.append({"id": eid, "display_name": heads.person_display_name(r.name for r in members),
                            "primary_email": heads.primary_email(emails), "company_id": company,
                            "is_internal": any(r.is_internal for r in members)})
    changed = {str(i) for batch in _batches(company_rows) for (i,) in bulk.execute(conn, _COMPANY_SQL, batch)}
    changed |= {str(i) for batch in _batches(person_rows) for (i,) in bulk.execute(conn, _PERSON_SQL, batch)}
    return changed


def _reclaimed_domains(conn: sa.engine.Connection, touched: Touched, company_rows: list[dict]) -> set[str]:
    """Domains a touched company claimed before this run (stored) or claims now."""
    ids = sorted(touched.entities)
    before = conn.execute(sa.text("SELECT DISTINCT jsonb_array_elements_text(domains) FROM companies "
                                  "WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": ids}).scalars() if ids else ()
    return set(before) | {d for row in company_rows for d in row["domains"]}


def _upsert_sql(table: str, columns: tuple[tuple[str, str], ...], key: tuple[str, ...], when: str = "",
                returning: str = "") -> str:
    """``INSERT … SELECT FROM json_to_recordset … ON CONFLICT (key) DO UPDATE`` of ``columns``, only
    where a value differs (an unchanged row is neither rewritten nor returned) and ``when`` holds."""
    names = [c for c, _ in columns]
    values = [c for c in names if c not in key]
    differs = bulk.distinct("t", {c: f"excluded.{c}" for c in values})
    return (f"INSERT INTO {table} AS t ({', '.join(names)}) SELECT {', '.join('r.' + c for c in names)} "
            f"FROM json_to_recordset(%(rows)s::json) AS r({bulk.record_type(columns)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            f"{', '.join(f'{c} = excluded.{c}' for c in values)}, updated_at = now() "
            f"WHERE {differs}{' AND (' + when + ')' if when else ''}{' RETURNING ' + returning if returning else ''}")


_COMPANY_SQL = _upsert_sql("companies", (("id", "uuid"), ("name", "text"), ("primary_domain", "text"),
                                         ("domains", "jsonb")), ("id",), returning="t.id")
_PERSON_SQL = _upsert_sql("persons", (("id", "uuid"), ("display_name", "text"), ("primary_email", "text"),
                                      ("company_id", "uuid"), ("is_internal", "boolean")), ("id",), returning="t.id")
# a pinned mapping is only ever replaced by another pinned one (a person's decision)
_MAPPING_SQL = _upsert_sql("entity_mappings", (
    ("source", "text"), ("source_type", "text"), ("source_id", "text"), ("entity_type", "text"),
    ("entity_id", "uuid"), ("confidence", "float8"), ("method", "text"), ("evidence", "jsonb"),
    ("pinned", "boolean")), ("source", "source_type", "source_id"), when="NOT t.pinned OR excluded.pinned",
    returning="1")
_BATCH = 10_000  # rows per statement: a few MB of JSON


def _batches(rows: list) -> Iterator[list]:
    for start in range(0, len(rows), _BATCH):
        yield rows[start:start + _BATCH]


def _write_mappings(conn: sa.engine.Connection, mappings: list[matching.Mapping], pinned: set) -> int:
    """Upsert ``mappings``; how many rows were inserted or changed (a full run sends every mapping)."""
    rows = [{"source": m.key[0], "source_type": m.key[1], "source_id": m.key[2], "entity_type": m.entity_type,
             "entity_id": m.entity_id, "confidence": m.confidence, "method": m.method, "evidence": m.evidence,
             "pinned": m.key in pinned}
            for m in mappings]
    return sum(len(bulk.execute(conn, _MAPPING_SQL, batch)) for batch in _batches(rows))


def _delete_orphans(conn: sa.engine.Connection, touched: Optional[Touched] = None) -> set[str]:
    """Entities no identity points at any more (merged away) are removed; their ids. Only an entity
    a member left can become one: with ``touched`` (a routine run) only those are looked at."""
    if touched is not None and not touched.entities:
        return set()
    among = "" if touched is None else " AND {alias}.id = ANY(CAST(:ids AS uuid[]))"
    params = {} if touched is None else {"ids": sorted(touched.entities)}
    persons = conn.execute(sa.text("DELETE FROM persons p WHERE NOT EXISTS (SELECT 1 FROM entity_mappings em "
                                   "WHERE em.entity_id = p.id)" + among.format(alias="p") + " RETURNING id::text"),
                           params)
    companies = conn.execute(sa.text("DELETE FROM companies c WHERE NOT EXISTS (SELECT 1 FROM entity_mappings em "
                                     "WHERE em.entity_id = c.id)" + among.format(alias="c") + " RETURNING id::text"),
                             params)
    return set(persons.scalars()) | set(companies.scalars())
