"""Chunks of the interactions a batch inserted or changed, and only those.

An interaction inserted by this batch has no stored turns, participants or chunks yet, so its
chunks are cut from the batch's own (merged, cleaned) rows without reading anything back. One
that existed and changed (a partial record adding turns, an edit) is re-read from Postgres, since
its stored state merges several deliveries. Unchanged interactions are not touched at all: their
chunk rows keep their ids, hashes and embeddings. Either way the chunks are a function of the
stored state only (``common.chunking`` is deterministic), so both paths give the same chunks.

An interaction the batch will insert is cut *before* its row is inserted (``prepare``), so the
row goes in with its ``content_hash`` and is written once: setting the hash afterwards rewrote
every new row (a non-HOT update of a full page: a second heap tuple and an entry in each of its
indexes). The writer knows which rows are new: whole interactions are new unless re-delivered,
and partial ones (turns from another stream) are looked up first, since they usually merge into
a stored row.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Optional

import sqlalchemy as sa

from common import chunking
from ingest_worker import model
from ingest_worker.upserts import clean_text, execute

# chunks of an interaction this transaction inserted need no conflict check (it has none yet)
_CHUNK_INSERT = (
    "INSERT INTO chunks AS c (id, interaction_id, ordinal, text, token_count, start_ms, end_ms, speakers, "
    "content_hash) SELECT r.id, r.interaction_id, r.ordinal, r.text, r.token_count, r.start_ms, r.end_ms, "
    "r.speakers, r.content_hash FROM json_to_recordset(%(rows)s::json) AS r(id uuid, interaction_id bigint, "
    "ordinal int, text text, token_count int, start_ms bigint, end_ms bigint, speakers jsonb, content_hash text)")
_CHUNK_SQL = _CHUNK_INSERT + (
    " ON CONFLICT (id) DO UPDATE SET ordinal = excluded.ordinal, text = excluded.text, "
    "token_count = excluded.token_count, start_ms = excluded.start_ms, end_ms = excluded.end_ms, "
    "speakers = excluded.speakers, content_hash = excluded.content_hash "
    # the text is a function of content_hash: comparing the hash avoids comparing the text
    "WHERE (c.ordinal, c.token_count, c.start_ms, c.end_ms, c.speakers, c.content_hash) IS DISTINCT FROM "
    "(excluded.ordinal, excluded.token_count, excluded.start_ms, excluded.end_ms, excluded.speakers, "
    "excluded.content_hash)")
_TRIM_SQL = (
    "DELETE FROM chunks c USING json_to_recordset(%(rows)s::json) AS k(iid bigint, n int) "
    "WHERE c.interaction_id = k.iid AND c.ordinal >= k.n")
_HASH_SQL = (
    "UPDATE interactions i SET content_hash = v.h FROM json_to_recordset(%(rows)s::json) AS v(iid bigint, h text) "
    "WHERE i.id = v.iid AND i.content_hash IS DISTINCT FROM v.h")


class _Head:
    __slots__ = ("id", "source", "source_type", "source_id", "kind", "title", "body", "deleted")

    def __init__(self, iid: int, key: model.IdentityKey, kind: str, title: Optional[str], body: Optional[str],
                 deleted: bool) -> None:
        self.id, self.source, self.source_type, self.source_id = iid, key.source, key.source_type, key.source_id
        self.kind, self.title, self.body, self.deleted = kind, title, body, deleted


def _turn_order(turn: dict) -> tuple:
    # Postgres orders the stored turns the same way: start_ms, then turn_key byte-wise (COLLATE "C")
    return turn["start_ms"], turn["turn_key"].encode()


def _chunkable_turns(rows: dict[str, dict], name_of: dict) -> list[dict]:
    """Turn rows (``upserts.turn_rows``) in stored order, as chunking reads them; a turn without
    a speaker name takes its participant's (``name_of``: speaker id to name), else the id."""
    return [{"text": t["text"], "start_ms": t["start_ms"], "end_ms": t["end_ms"],
             "speaker_name": t["speaker_name"] or name_of.get(t["speaker_id"]) or t["speaker_id"]}
            for t in sorted(rows.values(), key=_turn_order)]


def _batch_head(item: model.Interaction, iid: int, turns_of: dict, participants_of: dict
                ) -> tuple[_Head, list[dict]]:
    head = _Head(iid, item.key, item.kind, clean_text(item.title), clean_text(item.body),
                 bool(item.metadata.get("deleted")) and not item.partial)
    names = {p["speaker_id"]: p["name"] for p in participants_of[item.key].values() if p["speaker_id"] is not None}
    return head, _chunkable_turns(turns_of[item.key], names)


def from_batch(inserted: dict[model.IdentityKey, int], items: list[model.Interaction],
               turns_of: dict, participants_of: dict) -> tuple[list[_Head], dict[int, list[dict]]]:
    """Heads and turns of interactions this batch inserted, from the rows it wrote."""
    heads, turns = [], {}
    for item in items:
        iid = inserted.get(item.key)
        if iid is not None:
            head, turns[iid] = _batch_head(item, iid, turns_of, participants_of)
            heads.append(head)
    return heads, turns


#: Chunks of one interaction and the interaction's ``content_hash`` (a function of them).
Cut = tuple[list[chunking.ChunkDraft], str]


def cut(head: _Head, turns: list[dict]) -> Cut:
    # a deletion at the source removes the text from search: no chunks, so no vectors (cascade)
    drafts = [] if head.deleted else chunking.chunk_interaction(
        f"{head.source}:{head.source_type}:{head.source_id}", head.kind, head.title, head.body, turns)
    return drafts, hashlib.sha256("".join(d.content_hash for d in drafts).encode()).hexdigest()


def prepare(items: Iterable[model.Interaction], turns_of: dict, participants_of: dict
            ) -> dict[model.IdentityKey, Cut]:
    """Chunks of ``items`` as if each were new, before they are upserted.

    Used for the rows the upsert then reports inserted (their hash goes in with the row); a row
    that turns out stored already is cut again from its merged stored state, so a wasted cut
    costs time on re-delivery, never correctness.
    """
    return {item.key: cut(*_batch_head(item, 0, turns_of, participants_of)) for item in items}


def _chunk_rows(iid: int, drafts: list[chunking.ChunkDraft]) -> list[dict]:
    return [{"id": d.chunk_id, "interaction_id": iid, "ordinal": d.ordinal, "text": d.text,
             "token_count": d.token_count, "start_ms": d.start_ms, "end_ms": d.end_ms,
             "speakers": list(d.speakers), "content_hash": d.content_hash} for d in drafts]


def write_prepared(conn: sa.engine.Connection, prepared: dict[model.IdentityKey, Cut],
                   inserted: dict[model.IdentityKey, int]) -> int:
    """Insert the chunks of freshly inserted interactions cut by ``prepare`` (their hash is stored
    already); returns how many chunks were written."""
    rows = []
    for key, iid in inserted.items():
        done = prepared.get(key)
        if done is not None:
            rows.extend(_chunk_rows(iid, done[0]))
    if rows:
        execute(conn, _CHUNK_INSERT, rows)
    return len(rows)


def from_db(conn: sa.engine.Connection, ids: list[int], known_turns: Optional[dict[int, dict]] = None
            ) -> tuple[list[_Head], dict[int, list[dict]]]:
    """Heads and turns of stored interactions, as merged from every delivery so far.

    ``known_turns`` holds, by id, the turn rows (``upserts.turn_rows``) of interactions whose
    stored turns are exactly those, all written by this transaction (a Gong call whose transcript
    just landed): they are not read back, only their speakers' names are.
    """
    if not ids:
        return [], {}
    known_turns = known_turns or {}
    params = {"ids": ids}
    unread = [i for i in ids if i not in known_turns]
    heads = [_Head(r.id, model.IdentityKey(r.source, r.source_type, r.source_id), r.kind, r.title, r.body, r.deleted)
             for r in conn.execute(sa.text(
                 "SELECT id, source, source_type, source_id, kind, title, body, deleted FROM interactions "
                 "WHERE id = ANY(:ids)"), params)]
    # One primary-key probe per id (LATERAL subqueries with their own ORDER BY are planned per id):
    # with `= ANY(:ids)` or a plain join, on tables that grew since their last ANALYZE (every ingest
    # run), the planner chose to scan and even sort the whole table per batch (0.1 s each, growing).
    names = {(iid, speaker_id): name for iid, speaker_id, name in conn.execute(sa.text(
        "SELECT k.iid, p.speaker_id, p.name FROM unnest(CAST(:ids AS bigint[])) AS k(iid) CROSS JOIN LATERAL "
        "(SELECT speaker_id, name FROM participants WHERE interaction_id = k.iid AND speaker_id IS NOT NULL "
        "ORDER BY participant_key) AS p"), params)}
    turns: dict[int, list[dict]] = {}
    if known_turns:
        names_of: dict[int, dict] = {}
        for (iid, speaker_id), name in names.items():
            names_of.setdefault(iid, {})[speaker_id] = name
        turns = {iid: _chunkable_turns(rows, names_of.get(iid, {})) for iid, rows in known_turns.items()}
    if not unread:
        return heads, turns
    # rows unpacked as tuples: attribute access on each of ~100k result rows cost more than the query
    for iid, text, start_ms, end_ms, speaker_id, speaker_name in conn.execute(sa.text(
            "SELECT k.iid, t.text, t.start_ms, t.end_ms, t.speaker_id, t.speaker_name "
            "FROM unnest(CAST(:ids AS bigint[])) AS k(iid) CROSS JOIN LATERAL "
            "(SELECT text, start_ms, end_ms, speaker_id, speaker_name, turn_key FROM interaction_turns "
            'WHERE interaction_id = k.iid ORDER BY start_ms, turn_key COLLATE "C") AS t '
            'ORDER BY k.iid, t.start_ms, t.turn_key COLLATE "C"'), {"ids": unread}):
        name = speaker_name or names.get((iid, speaker_id)) or speaker_id
        turns.setdefault(iid, []).append({"text": text, "start_ms": start_ms, "end_ms": end_ms, "speaker_name": name})
    return heads, turns


def write(conn: sa.engine.Connection, heads: list[_Head], turns: dict[int, list[dict]],
          stored: bool) -> int:
    """Chunk ``heads`` and upsert the chunks; ``stored`` heads may have chunks already (trimmed
    and compared). Returns the number of chunks whose text is new or changed.

    The transaction must hold the row locks of ``stored`` heads' interactions (the writer's
    interaction upsert takes them; ``stored_interactions`` locks them itself): chunks of those
    interactions are written only by their lock holder, so positions read as absent stay absent."""
    if not heads:
        return 0
    old_hash: dict[str, str] = {}
    if stored:
        old_hash = {str(r.id): r.content_hash for r in conn.execute(sa.text(
            "SELECT id, content_hash FROM chunks WHERE interaction_id = ANY(:ids)"), {"ids": [h.id for h in heads]})}
    rows, counts, hashes = [], [], []
    for head in heads:
        drafts, content_hash = cut(head, turns.get(head.id, []))
        counts.append({"iid": head.id, "n": len(drafts)})
        hashes.append({"iid": head.id, "h": content_hash})
        rows.extend(_chunk_rows(head.id, drafts))
    changed = sum(1 for r in rows if old_hash.get(r["id"]) != r["content_hash"])
    # Chunks at positions the interaction did not have yet (most of a Gong call's chunks when its
    # transcript lands) go in by plain INSERT: no conflict check, no speculative insertion. The
    # caller holds the interactions' row locks (see ``write``'s docstring), so none appears since.
    fresh = [r for r in rows if r["id"] not in old_hash]
    if fresh:
        execute(conn, _CHUNK_INSERT, fresh)
    if len(fresh) < len(rows):
        execute(conn, _CHUNK_SQL, [r for r in rows if r["id"] in old_hash])
    if stored:
        execute(conn, _TRIM_SQL, counts)
    execute(conn, _HASH_SQL, hashes)
    return changed


def stored_interactions(conn: sa.engine.Connection, ids: list[int]) -> int:
    """Re-chunk stored interactions by id (redrives, tests, repairs); returns chunks new or changed."""
    conn.execute(sa.text("SELECT id FROM interactions WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
                 {"ids": list(ids)})
    heads, turns = from_db(conn, list(ids))
    return write(conn, heads, turns, stored=True)
