"""The CLI contract (DESIGN §8): sync --wait --json, status --json, keys create/revoke/list, config errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from common import db
from common.cli import _process_env
from tests.conftest import ROOT


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYREADY_")}
    return subprocess.run([sys.executable, "-m", "common.cli", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=600)


def test_sync_wait_json_reports_the_run_and_exit_code(domain, workers):
    done = _cli(["sync", "--source", "gong", "--source", "slack", "--wait", "--json"], _process_env(domain))
    assert done.returncode == 0, done.stderr[-2000:]
    # nothing left for interpreter shutdown: Celery results collected then raise "sys.meta_path is None"
    assert "Exception ignored" not in done.stderr, done.stderr[-2000:]
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded" and set(run["sources"]) == {"gong", "slack"}
    for counts in run["sources"].values():
        assert counts["in"] == counts["processed"] + counts["dead_lettered"] > 0
    with db.transaction(domain) as conn:
        audited = conn.execute(sa.text("SELECT actor, target, outcome FROM audit_log WHERE action = 'sync.trigger'")).all()
    assert [(a.startswith("cli:"), t, o) for a, t, o in audited] == [(True, f"run_id={run['run_id']}", "created")]


def test_status_json_names_urls_with_passwords_redacted(domain):
    env = _process_env(domain)
    shown = _cli(["status", "--json"], env)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["database"]["ok"] and report["redis"]["ok"] and report["broker"]["ok"]
    assert report["database"]["revision"] and report["domain"] == domain.domain
    bad = _cli(["status", "--json"], {**env, "PAYREADY_DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:1/x"})
    assert "s3cret" not in bad.stdout and "app:***@" in bad.stdout
    assert bad.returncode == 1 and not json.loads(bad.stdout)["database"]["ok"]


def test_keys_create_prints_the_key_alone_on_the_last_line(domain):
    made = _cli(["keys", "create", "--name", "cli-test"], _process_env(domain))
    assert made.returncode == 0
    last = made.stdout.strip().splitlines()[-1]
    assert last.startswith(f"pr_{domain.domain}.") and " " not in last


def test_bad_arguments_are_refused_before_anything_is_written(domain, tmp_path):
    """An empty key name was accepted (audit actor "key:"), a long one raised SQL's traceback, and
    --scale 0 or -1 wrote a sample anyway."""
    env = _process_env(domain)
    for args, says in ((["keys", "create", "--name", " "], "a key name is 1-128 printable characters"),
                       (["keys", "create", "--name", "x" * 129], "a key name is 1-128 printable characters"),
                       (["keys", "create", "--name", "tab\there"], "a key name is 1-128 printable characters"),
                       (["generate", "--scale", "0", "--out", str(tmp_path / "g")], "must be at least 1, got 0"),
                       (["generate", "--scale", "-1", "--out", str(tmp_path / "g")], "must be at least 1, got -1"),
                       (["sync", "--wait", "--timeout", "0"], "must be at least"),
                       (["mcp", "--port", "70000"], "a port is 1-65535")):
        failed = _cli(args, env)
        assert failed.returncode == 2 and says in failed.stderr and "Traceback" not in failed.stderr, (args, failed.stderr)
    assert not (tmp_path / "g").exists()
    with db.transaction(domain) as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM api_keys WHERE name = '' OR length(name) > 128")).scalar() == 0


def test_keys_revoke_stops_the_key_and_list_shows_it(domain):
    from api import auth

    env = _process_env(domain)
    key = _cli(["keys", "create", "--name", "leaver"], env).stdout.strip().splitlines()[-1]
    _cli(["keys", "create", "--name", "stayer"], env)
    assert auth.KeyStore(domain).lookup(key) == ("leaver", domain.domain)
    revoked = _cli(["keys", "revoke", "--name", "leaver"], env)
    assert revoked.returncode == 0 and "revoked 1 key" in revoked.stderr
    assert auth.KeyStore(domain).lookup(key) is None  # a fresh cache (or an expired entry) refuses it
    listed = {k["name"]: k for k in json.loads(_cli(["keys", "list", "--json"], env).stdout)}
    assert listed["leaver"]["revoked_at"] and listed["stayer"]["revoked_at"] is None
    assert key not in json.dumps(listed) and auth.hash_key(key) not in json.dumps(listed)
    again = _cli(["keys", "revoke", "--name", "leaver"], env)
    assert again.returncode == 1 and "no active API key named 'leaver'" in again.stderr


def test_bad_configuration_fails_at_start_naming_the_variable(tmp_path):
    for env, name in (({"PAYREADY_BATCH_SIZE": "lots"}, "PAYREADY_BATCH_SIZE"),
                      ({"PAYREADY_LANDING": "ftp"}, "PAYREADY_LANDING"),
                      ({"PAYREADY_EMBEDDER": "openai"}, "OPENAI_API_KEY"),
                      ({"OPENAI_API_KEY_FILE": str(tmp_path / "missing")}, "OPENAI_API_KEY_FILE")):
        failed = _cli(["status"], {**env, "PAYREADY_DATA_DIR": str(tmp_path)})
        assert failed.returncode == 2 and name in failed.stderr and "Traceback" not in failed.stderr


def test_generate_writes_sample_data_and_reports_its_counts(tmp_path):
    done = _cli(["generate", "--scale", "2", "--out", str(tmp_path / "gen")], {"PAYREADY_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "generated unit 2/2" in done.stderr
    counts = json.loads(done.stdout)
    for source in ("gong", "slack", "hubspot", "salesforce"):
        assert any((tmp_path / "gen" / source).glob("*.jsonl")), source
    assert (tmp_path / "gen" / "ground_truth.jsonl").stat().st_size > 0 and counts


def test_entities_resolve_full_repairs_links_no_queue_named(domain):
    """A link deleted behind the resolver's back: a routine run does not look (nothing queued it),
    ``payready entities resolve --full`` re-derives every interaction and puts it back."""
    from ingest_worker import upserts
    from tests.integration.test_resolve import add_identity

    env = _process_env(domain)
    add_identity(domain, "gong", "parties", "cli-p1", name="Dana Kim", emails=["dana.kim@globex.com"])
    with db.transaction(domain) as conn:
        iid = conn.execute(sa.text("INSERT INTO interactions (source, source_type, source_id, kind, occurred_at) "
                                   "VALUES ('gong', 'calls', 'cli-call', 'call', now()) RETURNING id")).scalar()
        conn.execute(sa.text("INSERT INTO participants (interaction_id, participant_key, role, source_type, source_id) "
                             "VALUES (:i, 'cli-p1', 'customer', 'parties', 'cli-p1')"), {"i": iid})
        upserts.queue_for_linking(conn, [iid])
    first = _cli(["entities", "resolve"], env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout)["links"] >= 1

    def links() -> int:
        with db.transaction(domain) as conn:
            return conn.execute(sa.text("SELECT count(*) FROM interaction_entities WHERE interaction_id = :i"),
                                {"i": iid}).scalar()

    with db.transaction(domain) as conn:
        conn.execute(sa.text("DELETE FROM interaction_entities WHERE interaction_id = :i"), {"i": iid})
    assert _cli(["entities", "resolve"], env).returncode == 0 and links() == 0
    full = _cli(["entities", "resolve", "--full"], env)
    assert full.returncode == 0, full.stderr[-2000:]
    assert links() == 1 and json.loads(full.stdout)["timelines_invalidated"] >= 1
