"""A record archived or deleted at the source leaves the timeline and search; restoring it brings
it back. Per-stream counts are reported with every run."""
from __future__ import annotations

import json

import sqlalchemy as sa

from common import db, runs, settings as settings_mod
from ingest_worker import pipeline
from resolve_worker import entities


def _line(stream: str, data: dict) -> str:
    return json.dumps({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1}})


def _note(archived: bool) -> dict:
    return {"id": "900", "createdAt": "2026-10-01T10:00:00Z", "updatedAt": "2026-10-02T10:00:00Z",
            "archived": archived, "contacts": ["77"],
            "properties": {"hs_note_body": "<p>Budget approved for the rollout.</p>",
                           "hs_timestamp": "2026-10-01T10:00:00Z"}}


def _sync(settings) -> dict:
    run = runs.start_run(settings, ["hubspot"], trigger="test")
    pipeline.process_source(settings, "hubspot", run.run_id)
    entities.resolve_all(settings)
    runs.phase(settings, run.run_id, "process:hubspot", status="done")
    return runs.finish_run(settings, run.run_id)


def _state(settings) -> tuple:
    with db.transaction(settings) as conn:
        deleted = conn.execute(sa.text("SELECT deleted FROM interactions WHERE source_id = '900'")).scalar()
        chunks = conn.execute(sa.text("SELECT count(*) FROM chunks c JOIN interactions i ON i.id = c.interaction_id "
                                      "WHERE i.source_id = '900'")).scalar()
        person = conn.execute(sa.text("SELECT entity_id FROM entity_mappings WHERE source_type = 'contacts' "
                                      "AND source_id = '77'")).scalar()
    from api import services

    timeline = services.timeline(settings, str(person))["items"]
    return deleted, chunks, [i["source_id"] for i in timeline]


def test_archive_and_restore_flow_through(domain, tmp_path):
    folder = tmp_path / "landing" / "hubspot"
    folder.mkdir(parents=True)
    contact = {"id": "77", "properties": {"email": "dana@acme.example", "firstname": "Dana", "lastname": "Reyes"}}
    notes = folder / "engagements_notes.jsonl"
    (folder / "contacts.jsonl").write_text(_line("contacts", contact) + "\n")
    notes.write_text(_line("engagements_notes", _note(False)) + "\n")
    settings = settings_mod._replace(domain, landing_dir=tmp_path / "landing")

    _sync(settings)
    assert _state(settings) == (False, 1, ["900"])

    with notes.open("a") as fh:  # the next sync lands the archived version
        fh.write(_line("engagements_notes", _note(True)) + "\n")
    _sync(settings)
    assert _state(settings) == (True, 0, [])

    with notes.open("a") as fh:
        fh.write(_line("engagements_notes", _note(False)) + "\n")
    _sync(settings)
    assert _state(settings) == (False, 1, ["900"])


def test_runs_report_counts_per_stream(domain, tmp_path):
    folder = tmp_path / "landing2" / "hubspot"
    folder.mkdir(parents=True)
    (folder / "engagements_notes.jsonl").write_text(
        _line("engagements_notes", {**_note(False), "id": "901"}) + "\n" + "{not json\n")
    (folder / "owners.jsonl").write_text(_line("owners", {"id": "5", "email": "rep@payready.com"}) + "\n")
    settings = settings_mod._replace(domain, landing_dir=tmp_path / "landing2")
    pipeline.reset_checkpoints(settings, ["hubspot"])  # a different landing folder: start it from line 0
    run = runs.start_run(settings, ["hubspot"], trigger="test")
    totals = pipeline.process_source(settings, "hubspot", run.run_id)
    runs.finish_run(settings, run.run_id)
    assert totals.streams == {"owners": {"in": 1, "processed": 1, "dead_lettered": 0},
                              "engagements_notes": {"in": 2, "processed": 1, "dead_lettered": 1}}
