"""The parts of recovery one by one, against real Postgres (no workers): stale detection, the
conditional fail-and-resume, the batch fence, the checkpoint compare-and-set, bounded process
tasks, and idempotent resolution (a recovered run resolves again)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from common import db, recovery, runs
from ingest_worker import pipeline
from resolve_worker import entities
from tests.ops import SOURCES, fingerprint, scalar


def _age_heartbeat(s, run_id: str, seconds: int) -> None:  # noqa: ANN001
    with db.transaction(s) as conn:
        conn.execute(sa.text("UPDATE sync_runs SET status = 'running', "
                             "heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"),
                     {"s": seconds, "id": run_id})


def _close_all(s) -> None:  # noqa: ANN001
    with db.transaction(s) as conn:
        conn.execute(sa.text("UPDATE sync_run_sources SET status = 'cancelled' WHERE status IN ('pending','running')"))
        conn.execute(sa.text("UPDATE sync_runs SET status = 'cancelled' WHERE status IN ('pending','running')"))


def test_a_stale_run_is_failed_once_and_resumed_by_a_recovery_run(domain):
    stale = runs.start_run(domain, ["gong", "slack"], trigger="test").run_id
    alive = runs.start_run(domain, ["hubspot"], trigger="test").run_id
    _age_heartbeat(domain, stale, 900)
    _age_heartbeat(domain, alive, 5)
    assert recovery.stale_runs(domain, 600) == [stale]
    [done] = recovery.recover_stale_runs(domain, 600)
    assert done.stale_run == stale and done.created and sorted(done.sources) == ["gong", "slack"]
    old, new = runs.get_run(domain, stale), runs.get_run(domain, done.new_run)
    assert old["status"] == "failed" and old["error"].startswith("stale")
    assert new["trigger"] == "recovery" and new["phases"]["recovery"]["recovered_from"] == stale
    assert runs.active_run_for(domain, ["gong"]) == done.new_run, "the fence now belongs to the new run"
    assert runs.get_run(domain, alive)["status"] == "running", "a run with a recent heartbeat is left alone"
    assert recovery.recover_stale_runs(domain, 600) == [], "a second recoverer finds nothing to do"
    _close_all(domain)


def test_recovery_does_not_take_a_run_that_beat_meanwhile(domain):
    run_id = runs.start_run(domain, ["gong"], trigger="test").run_id
    _age_heartbeat(domain, run_id, 900)
    runs.heartbeat(domain, run_id)
    assert recovery._fail_if_still_stale(domain, run_id, 600) is None
    assert runs.get_run(domain, run_id)["status"] == "running"
    _close_all(domain)


def test_a_batch_of_a_failed_run_writes_nothing(domain):
    run_id = runs.start_run(domain, ["hubspot"], trigger="test").run_id
    runs.fail_run(domain, run_id, "stale: test")
    with pytest.raises(runs.RunSuperseded):
        pipeline.process_source(domain, "hubspot", run_id)
    assert scalar(domain, "SELECT count(*) FROM sync_state WHERE source = 'hubspot'") == 0
    assert scalar(domain, "SELECT count(*) FROM interactions WHERE source = 'hubspot'") == 0


def test_the_checkpoint_moves_only_from_where_the_batch_read(domain):
    with db.transaction(domain) as conn:
        pipeline._advance(conn, "slack", "cas_test", 40, 40, expected=0)
    with pytest.raises(pipeline.CheckpointMoved):
        with db.transaction(domain) as conn:
            pipeline._advance(conn, "slack", "cas_test", 80, 40, expected=0)  # someone else read 0..40
    assert scalar(domain, "SELECT cursor_offset FROM sync_state WHERE stream = 'cas_test'") == 40


def test_bounded_process_tasks_resume_from_the_checkpoint(domain):
    from common.settings import _replace

    small = _replace(domain, batch_size=25)
    parts = []
    while True:
        totals = pipeline.process_source(small, "salesforce", None, max_batches=3)
        parts.append(totals)
        assert totals.batches <= 3
        if totals.finished:
            break
    assert len(parts) > 2, "the source needed several bounded tasks"
    again = pipeline.process_source(small, "salesforce", None)
    assert again.finished and again.records_in == 0, "every record was read exactly once"
    assert sum(p.records_in for p in parts) == sum(p.processed + p.dead for p in parts) > 0


def test_resolving_twice_equals_resolving_once(domain):
    for source in SOURCES:
        pipeline.process_source(domain, source, None)
    entities.resolve_all(domain)
    once = fingerprint(domain)
    entities.resolve_all(domain)
    assert fingerprint(domain) == once
