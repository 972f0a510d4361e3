"""A run with landing=airbyte through real workers: trigger against a local Airbyte API (fake,
following the public spec), wait by re-scheduling until the job is final, then read Airbyte-shaped
destination tables (3.x direct-load) built from the sample. Counts must match the rows landed, a
second run reads nothing, and a late update is read exactly once."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from common import db, procs, runs
from common.cli import _process_env
from ingest_worker.generate import SAMPLE_DIR
from ingest_worker.landing_airbyte import final_table_name
from tests.conftest import activate, drop_domain
from tests.fakes.airbyte_server import FakeAirbyteServer

SOURCES = ["gong", "slack", "hubspot", "salesforce"]
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def _column_type(values: list) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {str}:
        return "varchar"
    if kinds == {bool}:
        return "boolean"
    if kinds and kinds <= {int}:
        return "bigint"
    if kinds and kinds <= {int, float}:
        return "decimal(38,9)"
    return "jsonb"  # objects, arrays, unions (Airbyte's rule)


def _land(conn, schema: str, source: str) -> int:
    """Write each sample stream as a final table; returns the rows landed."""
    conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    landed = 0
    for path in sorted((SAMPLE_DIR / source).glob("*.jsonl")):
        rows = [json.loads(line)["record"]["data"] for line in path.open() if json.loads(line).get("type") == "RECORD"]
        rows = [r for r in rows if isinstance(r, dict)]
        columns = sorted({k for r in rows for k in r})
        types = {c: _column_type([r.get(c) for r in rows]) for c in columns}
        table = f'"{schema}"."{final_table_name(path.stem)}"'
        col_ddl = "".join(f', "{c}" {types[c]}' for c in columns)
        conn.execute(sa.text(
            f"CREATE TABLE {table} (_airbyte_raw_id varchar NOT NULL, _airbyte_extracted_at timestamptz NOT NULL, "
            f"_airbyte_meta jsonb NOT NULL, _airbyte_generation_id bigint NOT NULL{col_ddl})"))
        for i, r in enumerate(rows):
            values = {f"c{j}": (json.dumps(r.get(c)) if types[c] == "jsonb" and c in r else r.get(c))
                      for j, c in enumerate(columns)}
            names = "".join(f', "{c}"' for c in columns)
            params = "".join(f", CAST(:c{j} AS {types[c]})" for j, c in enumerate(columns))
            conn.execute(sa.text(
                f"INSERT INTO {table} (_airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id"
                f"{names}) VALUES (:rid, :at, '{{\"sync_id\": 1, \"changes\": []}}', 0{params})"),
                {"rid": str(uuid.uuid4()), "at": T0 + dt.timedelta(seconds=i // 7), **values})
        landed += len(rows)
    return landed


@pytest.fixture(scope="module")
def airbyte_domain(stack_urls, tmp_path_factory):
    server = FakeAirbyteServer(polls_per_step=1).start()
    prefix = f"ab{uuid.uuid4().hex[:6]}"
    connections = {s: str(uuid.uuid4()) for s in SOURCES}
    env = {"PAYREADY_LANDING": "airbyte", "AIRBYTE_API_URL": server.base_url, "AIRBYTE_CLIENT_ID": "test-client",
           "AIRBYTE_CLIENT_SECRET": "test-secret", "PAYREADY_AIRBYTE_SCHEMA": prefix + "_{source}",
           "PAYREADY_AIRBYTE_CONNECTIONS": ",".join(f"{s}={c}" for s, c in connections.items()),
           "PAYREADY_AIRBYTE_POLL_SECONDS": "1", "PAYREADY_BATCH_SIZE": "100"}
    from common import settings as settings_mod
    from common.cli import migrate

    domain = f"t_{uuid.uuid4().hex[:10]}"
    settings = settings_mod.load({**stack_urls.as_env(), "PAYREADY_DOMAIN": domain,
                                  "PAYREADY_REDIS_PREFIX": f"{domain}:", **env})
    activate(settings)
    migrate(settings)
    landed = {}
    with db.transaction(settings) as conn:
        for s in SOURCES:
            landed[s] = _land(conn, f"{prefix}_{s}", s)
    logs = tmp_path_factory.mktemp("ab-logs")
    worker_env = {**_process_env(settings), **env}
    workers = [procs.start(procs.worker_command(settings, p), worker_env, logs / f"{p}.log")
               for p in ("ingest", "resolve", "embed")]
    try:
        from common.celery_app import app

        procs.wait_for_workers(app, [settings.queue(p) for p in ("ingest", "resolve", "embed")], timeout=90)
        yield settings, server, landed, prefix
    finally:
        for w in workers:
            procs.stop(w)
        server.stop()
        with db.transaction(settings) as conn:
            for s in SOURCES:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{prefix}_{s}" CASCADE'))
        drop_domain(settings)


def _run(settings) -> dict:
    started = runs.start_run(settings, SOURCES, trigger="test")
    assert started.created
    runs.build_canvas(settings, started.run_id, SOURCES).apply_async()
    return runs.wait_for(settings, started.run_id, timeout=600)


def test_airbyte_run_triggers_waits_and_reads_every_landed_row(airbyte_domain):
    settings, server, landed, _ = airbyte_domain
    run = _run(settings)
    assert run["status"] == "succeeded", run
    for source in SOURCES:
        counts = run["sources"][source]
        assert counts["in"] == landed[source] and counts["in"] == counts["processed"] + counts["dead_lettered"]
        assert counts["airbyte_job_id"] is not None
        wait = run["phases"][f"wait:{source}"]
        assert wait["job_status"] == "succeeded" and wait["polls"] >= 2, "waiting re-scheduled, never slept"
    assert len(server.requests_to("/v1/jobs", "POST")) == 4
    with db.transaction(settings) as conn:
        interactions = conn.execute(sa.text("SELECT source, count(*) FROM interactions GROUP BY 1")).all()
    assert dict(interactions)["hubspot"] > 100 and dict(interactions)["gong"] > 10


def test_second_run_reads_nothing_and_a_late_update_exactly_once(airbyte_domain):
    settings, _, _, prefix = airbyte_domain
    again = _run(settings)
    assert again["status"] == "succeeded"
    assert Counter({s: c["in"] for s, c in again["sources"].items()}) == Counter({s: 0 for s in SOURCES})
    with db.transaction(settings) as conn:  # Airbyte dedup mode overwrote a note with a new version
        conn.execute(sa.text(
            f'UPDATE "{prefix}_hubspot"."engagements_notes" SET _airbyte_raw_id = :rid, '
            "_airbyte_extracted_at = now(), properties_hs_note_body = '<p>Renewal moved to Q3 &amp; pricing held.</p>', "
            "properties = jsonb_set(properties, '{hs_note_body}', '\"<p>Renewal moved to Q3 &amp; pricing held.</p>\"') "
            "WHERE id = (SELECT min(id) FROM \"" + prefix + "_hubspot\".\"engagements_notes\")"), {"rid": str(uuid.uuid4())})
    third = _run(settings)
    assert third["sources"]["hubspot"]["in"] == 1 and third["sources"]["gong"]["in"] == 0
    with db.transaction(settings) as conn:
        body = conn.execute(sa.text("SELECT count(*) FROM interactions WHERE body LIKE 'Renewal moved to Q3 & pricing%'"))
        assert body.scalar() == 1
