"""Bad input is dead-lettered with its reason and loses nothing; after a fix, re-driving writes what
now processes and keeps what still fails, without duplicating any row."""
from __future__ import annotations

import json

import sqlalchemy as sa

from common import db, runs, settings as settings_mod
from ingest_worker import pipeline
from ingest_worker.model import DeadRecord, Outcome
from ingest_worker.redrive import redrive
from ingest_worker.sources import hubspot


def _note(note_id, body: str) -> dict:
    data = {"createdAt": "2026-10-01T10:00:00Z", "updatedAt": "2026-10-01T10:00:00Z", "archived": False,
            "properties": {"hs_note_body": f"<p>{body}</p>", "hs_timestamp": "2026-10-01T10:00:00Z"}}
    if note_id is not None:
        data["id"] = note_id
    return {"type": "RECORD", "record": {"stream": "engagements_notes", "data": data, "emitted_at": 1}}


def _count(settings, sql: str):
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_dead_letters_keep_everything_and_redrive_recovers_after_a_fix(domain, tmp_path, monkeypatch):
    folder = tmp_path / "landing" / "hubspot"
    folder.mkdir(parents=True)
    lines = [json.dumps(_note("n1", "Pricing call went well")), json.dumps(_note("n2", "Card 4111 1111 1111 1111 on file")),
             json.dumps(_note(None, "no id at all")), '{"type": "RECORD", "record": {"stream": "engagements_notes"',
             json.dumps(_note("n3", "Security review booked"))]
    (folder / "engagements_notes.jsonl").write_text("\n".join(lines) + "\n")
    settings = settings_mod._replace(domain, landing_dir=tmp_path / "landing")

    real = hubspot.process

    def buggy(stream, records, ctx):  # a processor bug that rejects note n2
        records = list(records)
        out = real(stream, [r for r in records if r.get("id") != "n2"], ctx)
        bad = [r for r in records if r.get("id") == "n2"]
        return Outcome(out.interactions, out.identities, out.dead + [DeadRecord(stream, "bug: rejected", r) for r in bad],
                       out.processed)

    monkeypatch.setattr(hubspot, "process", buggy)
    run = runs.start_run(settings, ["hubspot"], trigger="test")
    totals = pipeline.process_source(settings, "hubspot", run.run_id)
    runs.finish_run(settings, run.run_id)
    assert (totals.records_in, totals.processed, totals.dead) == (5, 2, 3)
    with db.transaction(settings) as conn:
        dead = conn.execute(sa.text("SELECT reason, record::text FROM dead_letters ORDER BY id")).all()
    reasons = " | ".join(r.reason for r in dead)
    assert "bug: rejected" in reasons and "not JSON" in reasons and "id" in reasons
    assert all("4111 1111 1111 1111" not in r.record for r in dead), "card numbers never stored in clear"

    monkeypatch.setattr(hubspot, "process", real)  # the fix ships
    result = redrive(settings, "hubspot")
    assert (result.redriven, result.still_dead) == (1, 2)
    assert _count(settings, "SELECT count(*) FROM interactions WHERE source = 'hubspot'") == 3
    assert _count(settings, "SELECT count(*) FROM dead_letters") == 3, "re-drive never duplicates a dead letter"
    assert _count(settings, "SELECT count(*) FROM dead_letters WHERE redriven_at IS NULL") == 2
    assert _count(settings, "SELECT count(*) FROM interactions WHERE body LIKE '%4111 1111 1111 1111%'") == 0
    again = redrive(settings, "hubspot")
    assert (again.redriven, again.still_dead) == (0, 2)


def test_card_numbers_in_unknown_fields_are_never_stored(domain, tmp_path):
    folder = tmp_path / "landing3" / "hubspot"
    folder.mkdir(parents=True)
    note = _note("n9", "fine")
    note["record"]["data"]["custom_payment_field"] = "pay with 4111-1111-1111-1111 please"
    (folder / "engagements_notes.jsonl").write_text(json.dumps(note) + "\n")
    settings = settings_mod._replace(domain, landing_dir=tmp_path / "landing3")
    pipeline.reset_checkpoints(settings, ["hubspot"])
    pipeline.process_source(settings, "hubspot", None)
    with db.transaction(settings) as conn:
        stored = conn.execute(sa.text("SELECT metadata::text FROM interactions WHERE source_id = 'n9'")).scalar()
    assert "custom_payment_field" in stored and "4111" not in stored
