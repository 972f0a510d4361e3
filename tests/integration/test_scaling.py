"""Horizontal scaling: two ingest and two embed worker processes on the same queues. A full run
(landing=airbyte, through the local Airbyte stand-in) processes every landed row exactly once,
embeds every chunk exactly once, both processes of each type share the work, and the Airbyte
limit (1 request/s, burst 1, shared in Redis) holds across both ingest processes."""
from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter

import sqlalchemy as sa

from common import db, pii, runs, settings as settings_mod
from common.cli import migrate
from tests.conftest import activate, drop_domain
from tests.fakes.airbyte_server import FakeAirbyteServer
from tests.integration.test_airbyte_sync import _land
from tests.ops import (SOURCES, GatedOpenAIServer, logs_with_tracebacks, start_worker, stop_all,
                       wait_ready, worker_env)


class TimedAirbyteServer(FakeAirbyteServer):
    """The Airbyte stand-in, noting when each request arrived."""

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.arrivals: list[float] = []
        self._times = threading.Lock()

    def _handle(self, method, target, headers, raw):  # noqa: ANN001, ANN202
        with self._times:
            self.arrivals.append(time.monotonic())
        return super()._handle(method, target, headers, raw)


class SlowOpenAIServer(GatedOpenAIServer):
    """A little latency per request, as the real API has, so two embed processes interleave."""

    def _respond(self, body):  # noqa: ANN001, ANN202
        time.sleep(0.05)
        return super()._respond(body)


def test_two_processes_per_worker_type_share_work_without_duplicates(stack_urls, tmp_path):
    airbyte = TimedAirbyteServer(polls_per_step=1).start()
    openai = SlowOpenAIServer().start()
    prefix = f"sc{uuid.uuid4().hex[:6]}"
    connections = {s: str(uuid.uuid4()) for s in SOURCES}
    extra = {"PAYREADY_LANDING": "airbyte", "AIRBYTE_API_URL": airbyte.base_url, "AIRBYTE_CLIENT_ID": "test-client",
             "AIRBYTE_CLIENT_SECRET": "test-secret", "PAYREADY_AIRBYTE_SCHEMA": prefix + "_{source}",
             "PAYREADY_AIRBYTE_CONNECTIONS": ",".join(f"{s}={c}" for s, c in connections.items()),
             "PAYREADY_AIRBYTE_POLL_SECONDS": "1", "PAYREADY_BATCH_SIZE": "40",
             "PAYREADY_PROCESS_BATCHES_PER_TASK": "2", "PAYREADY_EMBED_BATCH_SIZE": "32"}
    domain = f"scale_{uuid.uuid4().hex[:8]}"
    s = settings_mod.load({**stack_urls.as_env(), "PAYREADY_DOMAIN": domain, "PAYREADY_REDIS_PREFIX": f"{domain}:",
                           **extra})
    activate(s)
    migrate(s)
    with db.transaction(s) as conn:
        landed = {src: _land(conn, f"{prefix}_{src}", src) for src in SOURCES}
    env = {**worker_env(s, openai.base_url), **extra}
    names = ["ingest-1", "ingest-2", "resolve-1", "embed-1", "embed-2"]
    workers = [start_worker(s, n.split("-")[0], env, tmp_path, n, concurrency=1) for n in names]
    try:
        wait_ready(s)
        started = runs.start_run(s, SOURCES, trigger="test")
        runs.build_canvas(s, started.run_id, SOURCES).apply_async()
        run = runs.wait_for(s, started.run_id, timeout=600)
        assert run["status"] == "succeeded", (run, logs_with_tracebacks(tmp_path))
        logs = {n: (tmp_path / f"{n}.log").read_text() for n in names}

        # every landed row read once: per source, and per batch across both ingest processes
        for src in SOURCES:
            assert run["sources"][src]["in"] == landed[src], src
        batch_in = {n: [int(x) for x in re.findall(r"\] batch source=\S+ stream=\S+ in=(\d+)", logs[n])]
                    for n in ("ingest-1", "ingest-2")}
        assert all(batch_in.values()), "both ingest processes processed batches"
        assert sum(map(sum, batch_in.values())) == sum(landed.values()), "no batch processed twice"

        # every chunk embedded once, by both embed processes together
        with db.transaction(s) as conn:
            texts = conn.execute(sa.text("SELECT text FROM chunks")).scalars().all()
            pending = conn.execute(sa.text(
                "SELECT count(*) FROM chunks WHERE embedded_hash IS DISTINCT FROM content_hash")).scalar()
        assert pending == 0 and len(texts) > 500
        assert Counter(openai.inputs) == Counter(pii.mask(t) for t in texts), "each chunk sent to OpenAI once"
        per_process = {n: sum(int(x) for x in re.findall(r"embed chunks=(\d+)", logs[n])) for n in ("embed-1", "embed-2")}
        assert all(per_process.values()) and sum(per_process.values()) == len(texts), per_process

        # the shared Airbyte limit (1/s, burst 1) held across both ingest processes
        assert all("task=trigger_source" in logs[n] for n in ("ingest-1", "ingest-2"))
        gaps = [b - a for a, b in zip(sorted(airbyte.arrivals), sorted(airbyte.arrivals)[1:])]
        assert len(gaps) >= 8 and min(gaps) > 0.5, sorted(gaps)[:5]
    finally:
        stop_all(workers)
        airbyte.stop()
        openai.stop()
        with db.transaction(s) as conn:
            for src in SOURCES:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{prefix}_{src}" CASCADE'))
        drop_domain(s)
