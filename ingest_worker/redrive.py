"""Re-drive dead letters after a fix: run them through today's processors again.

A record that now processes is written like any other (same upserts) and its dead letter is
marked ``redriven_at``; one that fails again keeps its row (same key) with the new reason.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import sqlalchemy as sa

from common import db
from common.settings import Settings
from ingest_worker.sources import Context, process
from ingest_worker.store import DbDirectory, record_dead, write_outcome


@dataclass
class RedriveResult:
    redriven: int = 0
    still_dead: int = 0
    per_stream: dict = field(default_factory=dict)


def _record_of(stored: dict) -> tuple[Optional[object], Optional[str]]:
    """The processor input a dead letter holds, or a reason why it still is not one."""
    if set(stored) != {"raw_line"}:
        return stored, None
    try:
        message = json.loads(stored["raw_line"])
    except (TypeError, json.JSONDecodeError) as exc:
        return None, f"line is not JSON: {getattr(exc, 'msg', exc)}"
    record = message.get("record") if isinstance(message, dict) else None
    if not isinstance(record, dict) or "data" not in record:
        return None, "RECORD message without record.data"
    return record["data"], None


def redrive(settings: Settings, source: Optional[str] = None, batch_size: int = 500) -> RedriveResult:
    result = RedriveResult()
    with db.transaction(settings) as conn:
        groups = conn.execute(sa.text(
            "SELECT DISTINCT source, stream FROM dead_letters WHERE redriven_at IS NULL "
            "AND (CAST(:src AS text) IS NULL OR source = :src) ORDER BY 1, 2"), {"src": source}).all()
    for src, stream in groups:
        while True:
            with db.transaction(settings) as conn:
                rows = conn.execute(sa.text(
                    "SELECT id, record_key, record FROM dead_letters WHERE redriven_at IS NULL AND source = :s "
                    "AND stream = :t ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"),
                    {"s": src, "t": stream, "n": batch_size}).all()
                if not rows:
                    break
                ok, bad = _redrive_rows(conn, src, stream, rows)
            result.redriven += ok
            result.still_dead += bad
            counts = result.per_stream.setdefault(f"{src}/{stream}", {"redriven": 0, "still_dead": 0})
            counts["redriven"] += ok
            counts["still_dead"] += bad
            if len(rows) < batch_size or ok == 0:
                break  # nothing more to gain this pass: what is left fails for the same reasons
    return result


def _redrive_rows(conn: sa.engine.Connection, source: str, stream: str, rows: list) -> tuple[int, int]:
    records, keys, unusable = [], {}, []
    for row in rows:
        record, reason = _record_of(row.record)
        if record is None:
            unusable.append((row, reason))
            continue
        records.append(record)
        keys[id(record)] = row
    outcome = process(source, stream, records, Context(directory=DbDirectory(conn)))
    write_outcome(conn, outcome, None, source, {k: v.record_key for k, v in keys.items()})
    failed = {keys[id(d.record)].id for d in outcome.dead if id(d.record) in keys}
    for row, reason in unusable:
        record_dead(conn, None, source, stream, reason, row.record, row.record_key)
    done = [keys[id(r)].id for r in records if keys[id(r)].id not in failed]
    if done:
        conn.execute(sa.text("UPDATE dead_letters SET redriven_at = now() WHERE id = ANY(:ids)"), {"ids": done})
    return len(done), len(failed) + len(unusable)
