"""Two domains side by side on one Postgres, one Redis and one broker (pay_ready and paragon, the
real names, so their real prefixes are used): both sync at once through their own workers, and
nothing crosses: schemas, Redis keys, queues, vectors, worker logs and API keys."""
from __future__ import annotations

import redis

from api import auth, create_app
from common import db, runs
from common.cli import migrate
from tests.conftest import activate, drop_domain, make_settings
from tests.ops import (PHASES, SOURCES, GatedOpenAIServer, fingerprint, logs_with_tracebacks, start_worker,
                       stop_all, wait_ready, worker_env)


def test_pay_ready_and_paragon_sync_side_by_side_and_nothing_crosses(stack_urls, tmp_path):
    domains = {name: make_settings(stack_urls, name, redis_prefix=None) for name in ("pay_ready", "paragon")}
    a, b = domains["pay_ready"], domains["paragon"]
    assert (a.schema, a.key_prefix, a.queue("embed"), a.collection_prefix) == \
        ("pay_ready", "pr:", "pay_ready.embed", "PayReady")
    assert (b.schema, b.key_prefix, b.queue("embed"), b.collection_prefix) == \
        ("paragon", "paragon:", "paragon.embed", "Paragon")
    for s in domains.values():
        drop_domain(s)  # a previous aborted session may have left them
        migrate(s)
    openai = GatedOpenAIServer().start()
    workers = []
    try:
        for name, s in domains.items():
            env = worker_env(s, openai.base_url, PAYREADY_EMBED_BATCH_SIZE="64")
            workers += [start_worker(s, p, env, tmp_path, f"{name}-{p}", concurrency=1) for p in PHASES]
        for s in domains.values():
            activate(s)
            wait_ready(s)
        run_ids = {}
        for name, s in domains.items():  # both runs in flight at once
            activate(s)
            started = runs.start_run(s, SOURCES, trigger="test")
            runs.build_canvas(s, started.run_id, SOURCES).apply_async()
            run_ids[name] = started.run_id
        for name, s in domains.items():
            run = runs.wait_for(s, run_ids[name], timeout=600)
            assert run["status"] == "succeeded", (run, logs_with_tracebacks(tmp_path))
            assert runs.get_run(domains[{"pay_ready": "paragon", "paragon": "pay_ready"}[name]],
                                run_ids[name]) is None, "a run is visible in its own schema only"

        # schemas: each holds the whole sample once, vectors included
        prints = {name: fingerprint(s) for name, s in domains.items()}
        assert prints["pay_ready"] == prints["paragon"], "the same sample gives the same data in each schema"
        assert prints["pay_ready"]["counts"]["chunk_vectors"] == prints["pay_ready"]["counts"]["chunks"] > 0

        # queues: every worker consumes only its own domain's queue
        from common.celery_app import app

        for node, queues in (app.control.inspect(timeout=2).active_queues() or {}).items():
            for name in domains:
                if node.startswith(f"{name}-"):
                    assert [q["name"] for q in queues] == [domains[name].queue(node.split("-")[1])], node
        for name in domains:
            other = run_ids["paragon" if name == "pay_ready" else "pay_ready"]
            for phase in PHASES:
                text = (tmp_path / f"{name}-{phase}.log").read_text()
                assert run_ids[name] in text and other not in text, f"{name}-{phase} saw the other domain's run"

        # Redis: each domain's keys under its own prefix, none naming the other domain
        keys = set()
        for number in range(16):  # caches, broker and results may each use their own database
            client = redis.Redis.from_url(a.redis_url.split("?", 1)[0], db=number)
            keys |= {k.decode() for k in client.scan_iter(count=1000)}
        keys_a = {k for k in keys if k.startswith(a.key_prefix)}
        keys_b = {k for k in keys if k.startswith(b.key_prefix)}
        assert keys_a and keys_b
        assert not any("paragon" in k or run_ids["paragon"] in k for k in keys_a)
        assert not any("pay_ready" in k or run_ids["pay_ready"] in k for k in keys_b)
        assert not any(k.startswith(("celery-task-meta", "_kombu", "unacked")) for k in keys), \
            "every Celery key carries a domain prefix"

        # API keys: each domain's key opens its own API only
        key_a, key_b = auth.create_key(a, "isolation"), auth.create_key(b, "isolation")
        for s, own, foreign in ((a, key_a, key_b), (b, key_b, key_a)):
            client_app = create_app(s).test_client()
            url = f"/api/v1/sync/runs/{run_ids[s.domain]}"
            assert client_app.get(url, headers={"Authorization": f"Bearer {own}"}).status_code == 200
            refused = client_app.get(url, headers={"Authorization": f"Bearer {foreign}"})
            assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden", \
                "a key of the other domain is recognised as such and refused"
    finally:
        stop_all(workers)
        openai.stop()
        for s in domains.values():
            drop_domain(s)
        db.dispose_all()
        activate(a)
