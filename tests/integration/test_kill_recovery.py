"""SIGKILL a real worker in the middle of each phase, start a replacement, let stale-run recovery
resume the run, and prove the data equal a clean run's: same rows, same content hashes, same
vectors, same entities, and no dead letter but the sample's malformed lines.

"In the middle" is made certain, not hoped for: the test holds a table lock (ingest: ``chunks``,
so conversation batches block after the identity batches committed; resolve:
``interaction_entities``, so the resolver blocks after writing entities and mappings, inside its
transaction) or holds the OpenAI stand-in's answer (embed: after three committed batches), waits
until the worker is seen blocked there, kills its whole process group, then lets go.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import sqlalchemy as sa

from common import db, runs
from tests.conftest import drop_domain
from tests.ops import (PHASES, SAMPLE_MALFORMED, GatedOpenAIServer, fingerprint, logs_with_tracebacks,
                       new_domain, scalar, start_run, start_worker, stop_all, wait_ready, wait_until,
                       worker_env)

# Small batches: many checkpoints per stream and several parts per process task.
SMALL = {"PAYREADY_BATCH_SIZE": "40", "PAYREADY_PROCESS_BATCHES_PER_TASK": "3",
         "PAYREADY_EMBED_BATCH_SIZE": "32", "PAYREADY_EMBED_BATCHES_PER_TASK": "4"}
STALE_AFTER = 2.0  # seconds without heartbeat before the test's recovery call takes the run


@pytest.fixture(scope="module")
def openai():
    with GatedOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def clean(stack_urls, openai, tmp_path_factory):  # noqa: ANN001
    """The fingerprint of an undisturbed run of the same sample with the same settings."""
    logs = tmp_path_factory.mktemp("clean-logs")
    s = new_domain(stack_urls, "clean")
    env = worker_env(s, openai.base_url, **SMALL)
    workers = [start_worker(s, p, env, logs, f"{p}-clean") for p in PHASES]
    try:
        wait_ready(s)
        run = runs.wait_for(s, start_run(s), timeout=600)
        assert run["status"] == "succeeded", (run, logs_with_tracebacks(logs))
        yield fingerprint(s)
    finally:
        stop_all(workers)
        drop_domain(s)


def _kill(proc) -> None:  # noqa: ANN001
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _pool_children(proc) -> list[int]:  # noqa: ANN001
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == proc.pid:
            children.append(int(stat.parent.name))
    return children


def _lock_waiters(s, table: str) -> int:  # noqa: ANN001
    return scalar(s, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                     "JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE n.nspname = :schema AND c.relname = :t AND NOT l.granted",
                  schema=s.schema, t=table)


class _TableLock:
    """A SHARE lock on a table held by the test until released: writers of the table wait."""

    def __init__(self, s, table: str):  # noqa: ANN001
        self.conn = db.engine_for(s).connect()
        self.tx = self.conn.begin()
        self.conn.execute(sa.text(f"LOCK TABLE {table} IN SHARE MODE"))

    def release(self) -> None:
        if self.conn is not None:
            self.tx.commit()
            self.conn.close()
            self.conn = None


def _killed_run(stack_urls, openai, phase: str, logs: Path):  # noqa: ANN001, ANN202
    s = new_domain(stack_urls, f"kill_{phase}")
    env = worker_env(s, openai.base_url, **SMALL)
    workers = {p: start_worker(s, p, env, logs, f"{p}-a") for p in PHASES}
    lock = None
    try:
        wait_ready(s)
        if phase == "ingest":
            lock = _TableLock(s, "chunks")
        elif phase == "resolve":
            lock = _TableLock(s, "interaction_entities")
        else:
            openai.release.clear()
            openai.held.clear()
            openai.open_for = len(openai.requests) + 3
        run_id = start_run(s)
        if phase == "ingest":
            wait_until(lambda: _lock_waiters(s, "chunks") and scalar(
                s, "SELECT sum(records_in) FROM sync_run_sources WHERE run_id = :r", r=run_id),
                what="ingest blocked after some batches committed")
        elif phase == "resolve":
            wait_until(lambda: _lock_waiters(s, "interaction_entities"), what="resolver inside its transaction")
        else:
            wait_until(lambda: openai.held.is_set() and scalar(
                s, "SELECT count(*) FROM chunks WHERE embedded_hash IS NOT NULL"), what="embed inside a batch")
        _kill(workers[phase])
        if lock is not None:
            lock.release()
        openai.open_for = None
        openai.release.set()
        workers[f"{phase}-b"] = start_worker(s, phase, env, logs, f"{phase}-b")
        wait_ready(s, [phase])

        from common.celery_app import RECOVER_STALE_RUNS, app

        def recovered():  # noqa: ANN202
            done = app.send_task(RECOVER_STALE_RUNS, kwargs={"stale_after": STALE_AFTER}).get(timeout=60)
            return [r for r in done if r["stale_run"] == run_id]

        [taken] = wait_until(recovered, timeout=300, poll=1.0, what="recovery of the stale run")
        assert taken["created"] and sorted(taken["sources"]) == sorted(["gong", "slack", "hubspot", "salesforce"])
        final = runs.wait_for(s, taken["new_run"], timeout=600)
        assert final["status"] == "succeeded", (final, logs_with_tracebacks(logs))
        old = runs.get_run(s, run_id)
        # a message of the dead run delivered late (visibility timeout) finds it superseded
        from common.celery_app import PROCESS_SOURCE

        late = app.send_task(PROCESS_SOURCE, kwargs={"run_id": run_id, "source": "gong"}).get(timeout=60)
        return s, fingerprint(s), old, final, late
    finally:
        if lock is not None:
            lock.release()
        openai.release.set()
        stop_all(workers.values())


def test_sigkill_of_pool_processes_mid_ingest_is_redelivered_within_the_same_run(stack_urls, openai, clean,
                                                                                tmp_path):
    """Only the pool processes die (an OOM kill): the main process sees WorkerLostError and, with
    acks_late + reject_on_worker_lost, requeues their tasks; the same run finishes, no recovery."""
    s = new_domain(stack_urls, "kill_pool")
    env = worker_env(s, openai.base_url, **SMALL)
    workers = [start_worker(s, p, env, tmp_path, f"{p}-a") for p in PHASES]
    lock = None
    try:
        wait_ready(s)
        lock = _TableLock(s, "chunks")
        run_id = start_run(s)
        wait_until(lambda: _lock_waiters(s, "chunks") and scalar(
            s, "SELECT sum(records_in) FROM sync_run_sources WHERE run_id = :r", r=run_id),
            what="ingest blocked after some batches committed")
        children = _pool_children(workers[0])
        assert children, "the ingest worker has pool processes"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        lock.release()
        run = runs.wait_for(s, run_id, timeout=600)
        assert run["status"] == "succeeded", (run, logs_with_tracebacks(tmp_path))
        assert "WorkerLostError" in (tmp_path / "ingest-a.log").read_text()
        got = fingerprint(s)
        assert got == clean, "data after killing the pool mid-ingest differ from a clean run"
    finally:
        if lock is not None:
            lock.release()
        stop_all(workers)
        drop_domain(s)


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_mid_phase_then_recovery_equals_a_clean_run(stack_urls, openai, clean, phase, tmp_path):
    s, got, old, final, late = _killed_run(stack_urls, openai, phase, tmp_path)
    try:
        assert old["status"] == "failed" and old["error"].startswith("stale"), old
        assert final["trigger"] == "recovery" and final["phases"]["recovery"]["recovered_from"] == old["run_id"]
        assert late == {"superseded": old["run_id"]}
        if phase == "ingest":
            # the kill interrupted processing: the dead run read part of the sample, the new run the rest
            assert sum(v["in"] for v in old["sources"].values()) > 0
            assert sum(v["in"] for v in final["sources"].values()) > 0
        assert got == clean, f"data after a kill mid-{phase} differ from a clean run"
        assert len(got["dead_letters"]) == SAMPLE_MALFORMED, "only the sample's malformed lines are dead"
        assert got["counts"]["chunk_vectors"] == got["counts"]["chunks"] > 0
    finally:
        drop_domain(s)
