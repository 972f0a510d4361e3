"""A whole run through the canvas on real worker subprocesses: every phase reports, the run
succeeds, the fence opens, and a second trigger while one is active returns the same run."""
from __future__ import annotations

import sqlalchemy as sa

from common import db, runs

SOURCES = ["gong", "slack", "hubspot", "salesforce"]


def test_full_run_through_real_workers(domain, workers):
    started = runs.start_run(domain, SOURCES, trigger="test")
    runs.build_canvas(domain, started.run_id, SOURCES).apply_async()
    duplicate = runs.start_run(domain, ["slack"], trigger="test")
    assert duplicate.run_id == started.run_id and not duplicate.created
    run = runs.wait_for(domain, started.run_id, timeout=600)
    assert run["status"] == "succeeded", run
    expected_phases = {f"{p}:{s}" for p in ("trigger", "wait", "process") for s in SOURCES} | {
        "resolve", "embed:0", "embed:1", "analytics"}
    assert expected_phases <= set(run["phases"])
    for source, counts in run["sources"].items():
        assert counts["status"] == "succeeded"
        assert counts["in"] == counts["processed"] + counts["dead_lettered"] > 0
    with db.transaction(domain) as conn:
        pending = conn.execute(sa.text(
            "SELECT count(*) FROM chunks WHERE embedded_hash IS DISTINCT FROM content_hash")).scalar()
        cached = conn.execute(sa.text("SELECT count(*) FROM analytics_cache")).scalar()
        last = conn.execute(sa.text("SELECT count(*) FROM data_sources WHERE last_success_at IS NOT NULL")).scalar()
    assert pending == 0 and cached >= 5 and last == 4
    assert runs.start_run(domain, ["slack"], trigger="test").created, "the fence opens when the run ends"
    ingest_log = (workers.logs / "ingest.log").read_text()
    assert f"task=process_source run={started.run_id} source=hubspot] batch source=hubspot" in ingest_log, \
        "each batch logs one line carrying the task's context"


def test_an_incremental_run_with_nothing_new_reads_nothing(domain, workers):
    """The checkpoint held: a second run reads zero records and still completes every phase."""
    with db.transaction(domain) as conn:
        conn.execute(sa.text("UPDATE sync_run_sources SET status = 'cancelled' WHERE status IN ('pending','running')"))
    started = runs.start_run(domain, ["gong"], trigger="test")
    runs.build_canvas(domain, started.run_id, ["gong"]).apply_async()
    run = runs.wait_for(domain, started.run_id, timeout=300)
    assert run["status"] == "succeeded", "nothing new landed: an empty incremental run succeeds"
    assert run["sources"]["gong"]["in"] == 0


def test_beat_dispatcher_never_starts_a_second_run(domain, workers):
    from common.celery_app import DISPATCH_SYNC, app

    held = runs.start_run(domain, ["salesforce"], trigger="test")
    assert held.created
    try:
        reply = app.send_task(DISPATCH_SYNC, kwargs={"sources": ["salesforce"]}).get(timeout=60)
        assert reply == {"run_id": held.run_id, "created": False}
        with db.transaction(domain) as conn:
            audited = conn.execute(sa.text(
                "SELECT actor, target, outcome FROM audit_log WHERE action = 'sync.trigger'")).all()
        assert [tuple(r) for r in audited] == [("beat", f"run_id={held.run_id}", "joined")]
    finally:
        runs.fail_run(domain, held.run_id, "test over")
