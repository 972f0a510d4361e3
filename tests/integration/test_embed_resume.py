"""The embed phase survives SIGKILL: a real embed process killed mid-phase, restarted, leaves every
chunk with exactly one vector of the current model, and the restart embeds only what was not
committed. Re-embedding after a model change goes through the real CLI."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import sqlalchemy as sa

from common import db, procs
from common.cli import _process_env
from embed_worker import pipeline
from ingest_worker.rechunk import stored_interactions as rechunk
from tests.conftest import ROOT
from tests.integration.chunk_seed import scalar

N = 400
BATCH = 8
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
TOPICS = ("renewal pricing", "onboarding plan", "security review", "invoice dispute", "product demo")


@pytest.fixture(scope="module")
def chunks(domain):
    with db.transaction(domain) as conn:
        ids = conn.execute(sa.text(
            "INSERT INTO interactions (source, source_type, source_id, kind, occurred_at, body) "
            "SELECT 'hubspot', 'engagements_notes', 'n' || g, 'note', :t0 + g * interval '1 hour', "
            "'Note ' || g || ' about the ' || (CAST(:topics AS text[]))[1 + g % 5] || ' with customer ' || g * 7 "
            "FROM generate_series(1, :n) AS g RETURNING id"), {"t0": T0, "topics": list(TOPICS), "n": N}).scalars().all()
        rechunk(conn, list(ids))
    assert scalar(domain, "SELECT count(*) FROM chunks") == N
    return domain


def _vectors(settings) -> int:
    return scalar(settings, "SELECT count(*) FROM chunk_vectors")


def test_killed_embed_process_resumes_without_loss_or_duplicates(chunks, tmp_path):
    settings = chunks
    env = {**_process_env(settings), "PAYREADY_EMBED_BATCH_SIZE": str(BATCH)}
    code = "from common import settings; from embed_worker.pipeline import embed_pending; embed_pending(settings.get())"
    proc = procs.start([sys.executable, "-c", code], env, tmp_path / "embed.log")
    try:
        deadline = time.monotonic() + 120
        while _vectors(settings) < 2 * BATCH:
            assert proc.poll() is None, (tmp_path / "embed.log").read_text()
            assert time.monotonic() < deadline, "the embed process stored nothing"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        procs.stop(proc)
    committed = _vectors(settings)
    assert 2 * BATCH <= committed < N, "killed mid-phase: some but not all batches committed"
    assert committed % BATCH == 0  # the batch in flight was rolled back whole, never half-stored
    assert scalar(settings, "SELECT count(*) FROM chunks WHERE embedded_hash = content_hash") == committed

    restarted = pipeline.embed_pending(settings)
    assert restarted.chunks == N - committed  # only what was not committed
    tag = pipeline.model_tag(pipeline.settings_embedder(settings))
    with db.transaction(settings) as conn:
        row = conn.execute(sa.text(
            "SELECT count(*) AS vectors, count(DISTINCT cv.chunk_id) AS distinct_chunks, "
            "count(*) FILTER (WHERE cv.content_hash = c.content_hash AND c.embedded_hash = c.content_hash "
            "AND cv.model = :tag AND c.embedding_model = :tag) AS current "
            "FROM chunks c JOIN chunk_vectors cv ON cv.chunk_id = c.id"), {"tag": tag}).one()
        sample = conn.execute(sa.text(
            "SELECT c.text, CAST(cv.embedding AS text) AS v FROM chunks c JOIN chunk_vectors cv ON cv.chunk_id = c.id "
            "ORDER BY c.id LIMIT 3")).all()
    assert (row.vectors, row.distinct_chunks, row.current) == (N, N, N)
    embedder = pipeline.settings_embedder(settings)
    for text, stored in sample:  # each stored vector is the model's vector of that chunk's text
        np.testing.assert_allclose(np.asarray(json.loads(stored)), embedder.embed([text])[0], atol=2e-3)


def test_reembed_command_after_a_model_change(chunks):
    settings = chunks
    pipeline.embed_pending(settings)  # when this test runs alone: everything embedded first
    with db.transaction(settings) as conn:  # 40 chunks as if embedded by an older model
        conn.execute(sa.text(
            "WITH old AS (SELECT id FROM chunks ORDER BY id LIMIT 40) "
            "UPDATE chunks SET embedding_model = 'all-MiniLM-L6-v2@older' FROM old WHERE chunks.id = old.id"))
        conn.execute(sa.text(
            "UPDATE chunk_vectors cv SET model = c.embedding_model FROM chunks c "
            "WHERE c.id = cv.chunk_id AND c.embedding_model = 'all-MiniLM-L6-v2@older'"))
    env = {**os.environ, **_process_env(settings)}
    out = subprocess.run([str(ROOT / ".venv/bin/payready"), "embed", "--reembed"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["marked_for_reembed"], result["chunks"]) == (40, 40)
    tag = result["model"]
    assert scalar(settings, "SELECT count(*) FROM chunk_vectors WHERE model = :m", m=tag) == N
    assert scalar(settings, "SELECT count(*) FROM chunks WHERE embedding_model = :m", m=tag) == N
    # nothing changed since: a second --reembed finds nothing; --all redoes every chunk
    assert pipeline.embed_command(settings, reembed=True)["marked_for_reembed"] == 0
    assert pipeline.mark_for_reembed(settings, everything=True) == N
    assert pipeline.embed_pending(settings).chunks == N
