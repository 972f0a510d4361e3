"""Per-request work kept small: the memory gauge is read at most every few seconds, and an audit
row's detail is copied, not sent through JSON, when it holds plain values only."""
from __future__ import annotations

import datetime as dt

from common import audit, metrics


def test_resident_memory_is_read_once_per_interval(monkeypatch):
    readings = []
    monkeypatch.setattr(metrics.RESIDENT_MEMORY, "set", readings.append)
    monkeypatch.setattr(metrics, "_memory_noted", (0, 0.0))  # as in a fresh process
    metrics.note_memory()
    metrics.note_memory()
    assert len(readings) == 1 and readings[0] > 0, "the first call reads, the next within the interval does not"
    pid, at = metrics._memory_noted
    monkeypatch.setattr(metrics, "_memory_noted", (pid, at - metrics.MEMORY_EVERY_S))
    metrics.note_memory()
    assert len(readings) == 2, "once the interval has passed it reads again"
    monkeypatch.setattr(metrics, "_memory_noted", (pid + 1, at))  # a forked child reads at once
    metrics.note_memory()
    assert len(readings) == 3


def test_audit_detail_is_stored_as_json_would_store_it():
    flat = {"ms": 1.25, "ok": True, "note": None}
    row = audit.row("key:x", "GET /x", None, "200", flat)
    assert row["detail"] == flat and row["detail"] is not flat
    nested = audit.row("key:x", "POST /x", None, "202",
                       {"request": {"sources": ["gong"]}, "at": dt.datetime(2026, 1, 1)})
    assert nested["detail"] == {"request": {"sources": ["gong"]}, "at": "2026-01-01 00:00:00"}
