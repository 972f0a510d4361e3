"""Interactions written straight into a domain schema and chunked by the real chunker
(``ingest_worker.rechunk.stored_interactions``), for tests that need a small, known set of chunks."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Optional

import sqlalchemy as sa

from common import db
from ingest_worker.rechunk import stored_interactions as rechunk


def add_interaction(settings, *, source: str, source_id: str, kind: str, body: str,
                    occurred_at: dt.datetime, title: Optional[str] = None, url: Optional[str] = None,
                    source_type: str = "test", turns: Optional[list[dict]] = None) -> int:
    with db.transaction(settings) as conn:
        iid = conn.execute(sa.text(
            "INSERT INTO interactions (source, source_type, source_id, kind, occurred_at, title, body, url) "
            "VALUES (:s, :st, :sid, :k, :at, :t, :b, :u) RETURNING id"),
            {"s": source, "st": source_type, "sid": source_id, "k": kind, "at": occurred_at, "t": title,
             "b": None if turns else body, "u": url}).scalar()
        for n, turn in enumerate(turns or []):
            conn.execute(sa.text(
                "INSERT INTO interaction_turns (interaction_id, turn_key, start_ms, end_ms, speaker_name, text) "
                "VALUES (:i, :k, :s, :e, :n, :t)"),
                {"i": iid, "k": str(n), "s": turn.get("start_ms", n * 1000), "e": turn.get("end_ms"),
                 "n": turn.get("speaker_name"), "t": turn["text"]})
        rechunk(conn, [iid])
    return iid


def add_person(settings, name: str, email: str, interaction_ids: list[int]) -> str:
    pid = str(uuid.uuid4())
    with db.transaction(settings) as conn:
        conn.execute(sa.text("INSERT INTO persons (id, display_name, primary_email) VALUES (:id, :n, :e)"),
                     {"id": pid, "n": name, "e": email})
        for iid in interaction_ids:
            conn.execute(sa.text(
                "INSERT INTO interaction_entities (entity_id, interaction_id, entity_type, occurred_at) "
                "SELECT :id, id, 'person', occurred_at FROM interactions WHERE id = :iid"), {"id": pid, "iid": iid})
    return pid


def chunk_ids(settings, interaction_id: int) -> list[str]:
    with db.transaction(settings) as conn:
        return [str(r) for r in conn.execute(sa.text(
            "SELECT id FROM chunks WHERE interaction_id = :i ORDER BY ordinal"), {"i": interaction_id}).scalars()]


def scalar(settings, sql: str, **params):
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql), params).scalar()
