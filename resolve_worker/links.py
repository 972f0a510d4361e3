"""Interaction links (``interaction_entities``): the persons and companies each interaction involves.

A link is derived, never stored by hand: the interaction's participants, turn speakers and
associated companies through ``entity_mappings``, plus the company of each linked person (not our
own staff). ``link`` brings the table to what the data implies, touching only rows that differ,
and reports which entities gained or lost a link (their cached timelines go stale).

Which interactions are re-derived:

* a **routine** run takes those whose derivation may have changed since the last run: queued by
  the ingest writer in the transaction that wrote them (``interactions_to_link``), naming an
  identity whose mapping changed, or linked to an entity whose head changed (a person's company,
  a person found to be staff, an entity merged away). Its cost follows what changed, not the
  history: re-deriving all 450k links of 100k identities took ~2 s on every run.
* a **full** run (``payready entities resolve --full``) re-derives every interaction: the repair path.
"""
from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from common import bulk

Key = tuple[str, str, str]

_PERSON_LINKS_SQL = """
    CREATE TEMP TABLE new_links ON COMMIT DROP AS
    SELECT em.entity_id, i.id AS interaction_id, 'person'::varchar(16) AS entity_type, i.occurred_at
      FROM participants p JOIN interactions i ON i.id = p.interaction_id {scope}
      JOIN entity_mappings em ON em.source = i.source AND em.source_type = p.source_type
                             AND em.source_id = p.source_id
    UNION
    SELECT em.entity_id, i.id, 'person', i.occurred_at
      FROM interaction_turns t JOIN interactions i ON i.id = t.interaction_id {scope}
      JOIN entity_mappings em ON em.source = i.source AND em.source_type = t.speaker_source_type
                             AND em.source_id = t.speaker_source_id"""
_COMPANY_LINKS_SQL = """
    INSERT INTO new_links (entity_id, interaction_id, entity_type, occurred_at)
    SELECT per.company_id, nl.interaction_id, 'company', nl.occurred_at
      FROM new_links nl JOIN persons per ON per.id = nl.entity_id
     WHERE per.company_id IS NOT NULL AND NOT per.is_internal
    UNION
    SELECT em.entity_id, i.id, 'company', i.occurred_at
      FROM interaction_companies ic JOIN interactions i ON i.id = ic.interaction_id {scope}
      JOIN entity_mappings em ON em.source = i.source AND em.source_type = ic.source_type
                             AND em.source_id = ic.source_id"""
_SCOPED = "JOIN relink r ON r.interaction_id = i.id"
_SAME_LINK = ("n.entity_id = ie.entity_id AND n.interaction_id = ie.interaction_id AND n.entity_type = ie.entity_type "
              "AND n.occurred_at IS NOT DISTINCT FROM ie.occurred_at")
_GONE_SQL = (
    "WITH gone AS (DELETE FROM interaction_entities ie {using} WHERE {scope} NOT EXISTS "
    f"(SELECT 1 FROM new_links n WHERE {_SAME_LINK}) RETURNING ie.entity_id) "
    "SELECT DISTINCT entity_id::text FROM gone")
_CAME_SQL = (
    "WITH came AS (INSERT INTO interaction_entities (entity_id, interaction_id, entity_type, occurred_at) "
    "SELECT n.entity_id, n.interaction_id, n.entity_type, n.occurred_at FROM new_links n WHERE NOT EXISTS "
    f"(SELECT 1 FROM interaction_entities ie WHERE {_SAME_LINK}) ORDER BY n.entity_id, n.interaction_id "
    "ON CONFLICT DO NOTHING RETURNING entity_id) SELECT DISTINCT entity_id::text FROM came")
# Into an empty table (a first run) every derived link is new: no anti-join, no speculative
# insertion (ON CONFLICT costs a unique-index probe per row; DISTINCT ON over the sort drops the
# same duplicates), and rows in the order of the two indexes that lead with entity_id, so their
# leaf pages fill one after another. At 450k links the backend's CPU went from ~15 s to ~8 s,
# about half of what is left being the foreign-key check per row (see the README's "Links").
_INTO_EMPTY_SQL = (
    "INSERT INTO interaction_entities (entity_id, interaction_id, entity_type, occurred_at) "
    "SELECT DISTINCT ON (entity_id, interaction_id) entity_id, interaction_id, entity_type, occurred_at "
    "FROM new_links ORDER BY entity_id, interaction_id")

# the interactions a routine run re-derives (taking the queue empties it: rows queued by an ingest
# that commits later stay for the next run)
_QUEUED_SQL = """
    CREATE TEMP TABLE relink ON COMMIT DROP AS
    WITH taken AS (DELETE FROM interactions_to_link RETURNING interaction_id)
    SELECT DISTINCT interaction_id FROM taken"""
_OF_IDENTITIES_SQL = """
    INSERT INTO relink (interaction_id)
    SELECT p.interaction_id FROM {keys} JOIN participants p ON p.source_type = k.source_type
           AND p.source_id = k.source_id JOIN interactions i ON i.id = p.interaction_id AND i.source = k.source
    UNION
    SELECT t.interaction_id FROM {keys} JOIN interaction_turns t ON t.speaker_source_type = k.source_type
           AND t.speaker_source_id = k.source_id JOIN interactions i ON i.id = t.interaction_id AND i.source = k.source
    UNION
    SELECT c.interaction_id FROM {keys} JOIN interaction_companies c ON c.source_type = k.source_type
           AND c.source_id = k.source_id JOIN interactions i ON i.id = c.interaction_id AND i.source = k.source
    EXCEPT SELECT interaction_id FROM relink""".format(
    keys="json_to_recordset(%(rows)s::json) AS k(source text, source_type text, source_id text)")
_OF_ENTITIES_SQL = """
    INSERT INTO relink (interaction_id)
    SELECT DISTINCT interaction_id FROM interaction_entities WHERE entity_id = ANY(CAST(%(ids)s AS uuid[]))
    EXCEPT SELECT interaction_id FROM relink"""


def link(conn: sa.engine.Connection, full: bool, remapped: list[Key], entities: Iterable[str],
         identities: int = 0) -> tuple[int, set[str]]:
    """Bring ``interaction_entities`` to the links the mappings imply; (links, entities whose links
    changed). ``remapped``: identities whose entity changed this run (or that are new);
    ``entities``: ids whose head changed (or that are gone). ``full`` re-derives every interaction,
    and so does a run that remapped more than a tenth of the ``identities`` (a first run, a big
    merge): finding their interactions key by key cost more than deriving all (15.7 s against
    9 s on the first run at 100k identities)."""
    if full or len(remapped) > max(1000, identities // 10):
        conn.execute(sa.text("DELETE FROM interactions_to_link"))
        scope = ""
    else:
        _choose(conn, remapped, entities)
        scope = _SCOPED
    conn.execute(sa.text(_PERSON_LINKS_SQL.format(scope=scope)))
    conn.execute(sa.text(_COMPANY_LINKS_SQL.format(scope=scope)))
    conn.execute(sa.text("ANALYZE new_links"))  # temp tables get no autovacuum statistics
    # no link at all (a first run, whatever its scope): nothing to delete or compare against; only
    # the resolver writes links, one run at a time (its table lock), so the table stays empty
    if not conn.execute(sa.text("SELECT EXISTS (SELECT FROM interaction_entities)")).scalar():
        conn.execute(sa.text(_INTO_EMPTY_SQL))
        came = conn.execute(sa.text("SELECT DISTINCT entity_id::text FROM new_links")).scalars().all()
        return conn.execute(sa.text("SELECT count(*) FROM interaction_entities")).scalar(), set(came)
    gone = conn.execute(sa.text(_GONE_SQL.format(
        using="USING relink r" if scope else "",
        scope="ie.interaction_id = r.interaction_id AND" if scope else ""))).scalars().all()
    came = conn.execute(sa.text(_CAME_SQL)).scalars().all()
    links = conn.execute(sa.text("SELECT count(*) FROM interaction_entities")).scalar()
    return links, set(gone) | set(came)


def _choose(conn: sa.engine.Connection, remapped: Iterable[Key], entities: Iterable[str]) -> None:
    """Fill the temp table ``relink`` with the interactions a routine run re-derives."""
    conn.execute(sa.text(_QUEUED_SQL))
    keys = [{"source": s, "source_type": t, "source_id": i} for s, t, i in remapped]
    for start in range(0, len(keys), 10_000):
        bulk.execute(conn, _OF_IDENTITIES_SQL, keys[start:start + 10_000])
    ids = sorted(entities)
    if ids:
        conn.exec_driver_sql(_OF_ENTITIES_SQL, {"ids": ids})
    conn.execute(sa.text("ANALYZE relink"))
