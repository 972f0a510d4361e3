"""The coaching report service: Gong calls and turns from Postgres through api.coaching's metrics.

Shared by GET /api/v1/coaching/report and the MCP tool generate_coaching_report.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Optional

import sqlalchemy as sa

from api import coaching
from api.coaching import CallData, CoachingConfig, Turn
from api.services import NotFound, parse_uuid
from common import db
from common.settings import Settings
from embed_worker.stores import SearchFilters, interaction_filter_sql

DEFINITIONS = "docs/coaching.md"


def load_calls(conn: sa.engine.Connection, start: Optional[dt.datetime], end: Optional[dt.datetime],
               rep_id: Optional[str] = None) -> list[CallData]:
    params: dict = {}
    where = interaction_filter_sql(SearchFilters(sources=("gong",), kinds=("call",), since=start, until=end), params)
    where.append("EXISTS (SELECT 1 FROM interaction_turns t WHERE t.interaction_id = i.id)")
    if rep_id:
        where.append("EXISTS (SELECT 1 FROM participants p JOIN entity_mappings em ON em.source = 'gong' "
                     "AND em.source_type = p.source_type AND em.source_id = p.source_id "
                     "WHERE p.interaction_id = i.id AND p.role = 'rep' AND em.entity_id = :rep)")
        params["rep"] = rep_id
    calls = conn.execute(sa.text(
        "SELECT i.id, i.source_id, i.title, i.occurred_at, i.url, i.duration_s, i.metadata FROM interactions i "
        f"WHERE {' AND '.join(where)} ORDER BY i.occurred_at, i.id"), params).mappings().all()
    if not calls:
        return []
    ids = [c["id"] for c in calls]
    turns: dict[int, list[Turn]] = {i: [] for i in ids}
    for r in conn.execute(sa.text(
            "SELECT interaction_id, speaker_id, start_ms, end_ms, text, topic FROM interaction_turns "
            "WHERE interaction_id = ANY(:ids) ORDER BY interaction_id, start_ms, turn_key"), {"ids": ids}).mappings():
        turns[r["interaction_id"]].append(Turn(r["speaker_id"], int(r["start_ms"] or 0),
                                               None if r["end_ms"] is None else int(r["end_ms"]), r["text"] or "",
                                               r["topic"]))
    speakers: dict[int, dict[str, dict]] = {i: {} for i in ids}
    for r in conn.execute(sa.text(
            "SELECT p.interaction_id, p.speaker_id, p.role, p.name, p.participant_key, em.entity_id::text AS entity_id, "
            "per.display_name FROM participants p LEFT JOIN entity_mappings em ON em.source = 'gong' "
            "AND em.source_type = p.source_type AND em.source_id = p.source_id "
            "LEFT JOIN persons per ON per.id = em.entity_id "
            "WHERE p.interaction_id = ANY(:ids) AND p.speaker_id IS NOT NULL"), {"ids": ids}).mappings():
        speakers[r["interaction_id"]][r["speaker_id"]] = {
            "entity_id": r["entity_id"], "name": r["display_name"] or r["name"],
            "key": r["entity_id"] or f"gong:{r['participant_key']}",
            "internal": r["role"] == "rep", "external": r["role"] != "rep"}
    return [CallData(c["id"], c["source_id"], c["title"], c["occurred_at"], c["url"], c["duration_s"],
                     c["metadata"] or {}, turns[c["id"]], speakers[c["id"]]) for c in calls]


def roles_for(call: CallData, rep_key: str) -> dict[str, str]:
    """Speaker roles of a call as seen by one rep: the rep, colleagues (company side), customers."""
    roles = {}
    for speaker_id, who in call.speakers.items():
        if who["key"] == rep_key:
            roles[speaker_id] = coaching.REP
        elif who["internal"]:
            roles[speaker_id] = "colleague"
        elif who["external"]:
            roles[speaker_id] = coaching.CUSTOMER
    return roles


def build_report(calls: list[CallData], rep_id: Optional[str] = None,
                 cfg: CoachingConfig = CoachingConfig()) -> dict:
    """Per call metrics for every rep on each call (or only ``rep_id``), then per-rep averages."""
    per_rep: dict[str, dict] = {}
    all_rows: list[dict] = []
    for call in calls:
        reps = {who["key"]: who for who in call.speakers.values() if who["internal"]}
        for key, who in reps.items():
            if rep_id and who["entity_id"] != rep_id:
                continue
            metrics = coaching.call_metrics(call.turns, roles_for(call, key), call.duration_s, cfg)
            row = {"interaction_id": call.interaction_id, "source": "gong", "source_type": "extensiveCalls",
                   "source_id": call.source_id, "title": call.title,
                   "occurred_at": call.occurred_at.isoformat() if call.occurred_at else None,
                   "url": call.url, "metrics": metrics, "gong": coaching.gong_stats(call.metadata)}
            all_rows.append(row)
            entry = per_rep.setdefault(key, {"rep": {"id": who["entity_id"], "name": who["name"]}, "calls": []})
            entry["calls"].append(row)
    baseline = coaching.flag_fillers(all_rows, cfg)
    reps = []
    for entry in sorted(per_rep.values(), key=lambda e: (e["rep"]["name"] or "", e["rep"]["id"] or "")):
        reps.append({"rep": entry["rep"], "averages": coaching.averages(entry["calls"]), "calls": entry["calls"]})
    return {"filler_baseline_per_100_words": baseline, "reps": reps}


def report(settings: Settings, rep_id: Optional[str] = None, start: Optional[dt.datetime] = None,
           end: Optional[dt.datetime] = None, cfg: CoachingConfig = CoachingConfig()) -> dict:
    """The coaching report of one rep (a person id) or of every rep with Gong calls in [start, end)."""
    if rep_id:
        rep_id = parse_uuid(rep_id, "rep_id")
    with db.transaction(settings) as conn:
        if rep_id and not conn.execute(sa.text("SELECT 1 FROM persons WHERE id = :id"), {"id": rep_id}).first():
            raise NotFound(f"no person with id {rep_id}")
        # the filler baseline is the median over every call in the window, not only this rep's
        calls = load_calls(conn, start, end)
    body = build_report(calls, None, cfg)
    if rep_id:
        body["reps"] = [r for r in body["reps"] if r["rep"]["id"] == rep_id]
    return {"rep_id": rep_id, "from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
            "definitions": DEFINITIONS, "config": asdict(cfg), **body}
