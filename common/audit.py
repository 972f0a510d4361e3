"""The audit log (DESIGN §10): who did what to which target, with what outcome, when.

API calls go through :class:`AuditWriter`: rows are queued in memory and written by a background
thread in one multi-row INSERT every ``FLUSH_SECONDS`` (or at once for writes such as a sync
trigger), so a timeline read costs an append, not a round trip. Sync triggers from the CLI and
beat are written directly with :func:`write`.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections import deque
from typing import Optional

import psycopg2
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from common import db
from common.settings import Settings

log = logging.getLogger("payready.audit")

# the database cannot be reached (rows wait for it), as opposed to a row it refuses
_OUTAGE = (sa_exc.OperationalError, sa_exc.InterfaceError, psycopg2.OperationalError, psycopg2.InterfaceError)

FLUSH_SECONDS = 0.25
MAX_QUEUED = 50_000  # beyond this (database down for long) the oldest rows are dropped, with a log line

# One statement per batch, its rows as one JSON document: the row-by-row quoting of psycopg2's
# ``execute_values`` cost ~8 µs of the API process's CPU per row (20 µs in all), this ~3 (8.5 in all),
# measured on 250-row batches. COPY is not an option: Postgres refuses COPY FROM on tables with
# row-level security, which every domain table has (common/rls.py).
_INSERT_SQL = (
    "INSERT INTO audit_log (at, actor, action, target, outcome, detail) "
    "SELECT at, actor, action, target, outcome, detail FROM jsonb_to_recordset(%s::jsonb) "
    "AS r(at timestamptz, actor text, action text, target text, outcome text, detail jsonb)")


def _insert(conn: Connection, rows: list[dict]) -> None:
    payload = json.dumps([{**r, "at": r["at"].isoformat()} for r in rows])
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.execute(_INSERT_SQL, (payload,))


def row(actor: str, action: str, target: Optional[str], outcome: str, detail: Optional[dict] = None,
        at: Optional[object] = None) -> dict:
    from common.models import utcnow

    return {"at": at or utcnow(), "actor": _text(actor)[:128], "action": _text(action)[:64],
            "target": (target or None) and _text(target)[:500], "outcome": _text(outcome)[:32],
            "detail": _plain(detail or {})}


def _text(value: object) -> str:
    """``value`` as text Postgres will store: a NUL (``?q=%00``) or a lone surrogate would make the
    whole batch fail, and with it every later flush of the process."""
    text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _plain(detail: dict) -> dict:
    """``detail`` as JSON would store it (anything else as its str, text as :func:`_text` makes
    it); flat dicts of numbers, the API's usual ``{"ms": 1.2}``, are taken as they are."""
    if all(isinstance(v, (int, float, bool, type(None))) for v in detail.values()) and \
            all(isinstance(k, str) and k.isascii() and "\x00" not in k for k in detail):
        return dict(detail)
    return _clean(json.loads(json.dumps(detail, default=str)))


def _clean(value: object) -> object:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write(settings: Settings, actor: str, action: str, target: Optional[str], outcome: str,
          detail: Optional[dict] = None) -> None:
    with db.transaction(settings) as conn:
        _insert(conn, [row(actor, action, target, outcome, detail)])


class AuditWriter:
    """Per process; the flushing thread starts on first use (after gunicorn forks)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pid: Optional[int] = None
        self._failing = False

    def record(self, entry: dict, flush_now: bool = False) -> None:
        self._start()
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            log.error("audit queue full: dropped the oldest row")
        self._queue.append(entry)
        if flush_now:
            self.flush()

    def flush(self) -> int:
        with self._lock:
            batch = []
            while self._queue:
                batch.append(self._queue.popleft())
            if not batch:
                return 0
            try:
                with db.transaction(self.settings) as conn:
                    _insert(conn, batch)
            except _OUTAGE as exc:  # the log must survive a database outage: rows wait
                if not self._failing:  # once per outage, not every flush
                    log.error("audit writes failing, rows kept until the database answers: %s", exc)
                self._failing = True
                self._queue.extendleft(reversed(batch))
                return 0
            except Exception:  # noqa: BLE001 - a row the database refuses must not block the others
                return self._one_by_one(batch)
            if self._failing:
                log.warning("audit writes resumed")
                self._failing = False
            return len(batch)

    def _one_by_one(self, batch: list[dict]) -> int:
        written = 0
        for position, entry in enumerate(batch):
            try:
                with db.transaction(self.settings) as conn:
                    _insert(conn, [entry])
                written += 1
            except _OUTAGE:  # this row and the rest wait for the database; none written twice
                self._queue.extendleft(reversed(batch[position:]))
                break
            except Exception as exc:  # noqa: BLE001
                log.error("audit row refused by the database, dropped: %r: %s", entry, exc)
        return written

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._queue.clear()  # rows queued before a fork belong to the parent
        threading.Thread(target=self._loop, name="audit-writer", daemon=True).start()
        atexit.register(self.flush)

    def _loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self.flush()
