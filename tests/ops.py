"""Helpers of the operations tests (kill/recovery, scaling, domain isolation): fresh domains with
their own real worker processes, and a fingerprint of everything a run writes."""
from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

import sqlalchemy as sa

from common import db, procs, runs
from common.settings import Settings
from tests.conftest import activate, make_settings
from tests.fakes.openai_server import FakeOpenAIServer

PHASES = ("ingest", "resolve", "embed")
SOURCES = ["gong", "slack", "hubspot", "salesforce"]
SAMPLE_MALFORMED = 10  # lines of the bundled sample that are not valid records


class GatedOpenAIServer(FakeOpenAIServer):
    """The OpenAI stand-in, able to hold every request after the first ``open_for`` until released
    (so a test can kill the embed worker while it is provably inside a batch)."""

    def __init__(self, dim: int = 384) -> None:
        super().__init__(dim=dim)
        self.open_for: Optional[int] = None
        self.held = threading.Event()
        self.release = threading.Event()
        self.inputs: list[str] = []
        self._count_lock = threading.Lock()

    def _respond(self, body):  # noqa: ANN001, ANN202
        with self._count_lock:
            n = len(self.requests)
        if self.open_for is not None and n >= self.open_for:
            self.held.set()
            self.release.wait(timeout=120)
        with self._count_lock:
            texts = body.get("input")
            self.inputs.extend([texts] if isinstance(texts, str) else texts)
        return super()._respond(body)


def new_domain(stack_urls, prefix: str, **extra) -> Settings:  # noqa: ANN001
    from common.cli import migrate

    settings = make_settings(stack_urls, f"{prefix}_{uuid.uuid4().hex[:8]}", **extra)
    activate(settings)
    migrate(settings)
    return settings


def worker_env(settings: Settings, openai_url: str, **extra: str) -> dict[str, str]:
    from common.cli import _process_env

    return {**_process_env(settings), "PAYREADY_LOG_LEVEL": "INFO", "PAYREADY_EMBEDDER": "openai",
            "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": openai_url, **extra}


def start_worker(settings: Settings, phase: str, env: dict[str, str], logs: Path, name: str,
                 concurrency: Optional[int] = None) -> subprocess.Popen:
    return procs.start(procs.worker_command(settings, phase, concurrency=concurrency, name=name), env,
                       logs / f"{name}.log")


def wait_ready(settings: Settings, phases=PHASES) -> None:  # noqa: ANN001
    from common.celery_app import app

    procs.wait_for_workers(app, [settings.queue(p) for p in phases], timeout=120)


def start_run(settings: Settings, sources=SOURCES) -> str:  # noqa: ANN001
    activate(settings)
    started = runs.start_run(settings, list(sources), trigger="test")
    assert started.created
    runs.dispatch(settings, started.run_id, list(sources))
    return started.run_id


def wait_until(predicate, timeout: float = 120.0, poll: float = 0.05, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what} not reached in {timeout:.0f}s")


def scalar(settings: Settings, sql: str, **params):  # noqa: ANN201
    with db.transaction(settings) as conn:
        return conn.execute(sa.text(sql), params).scalar()


def _digest(rows) -> str:  # noqa: ANN001
    return hashlib.sha256(json.dumps(rows, default=str, sort_keys=True).encode()).hexdigest()


def fingerprint(settings: Settings) -> dict:
    """Everything a run writes, by natural keys (ids and timestamps differ between domains)."""
    with db.transaction(settings) as conn:
        def rows(sql: str) -> list:
            return [list(r) for r in conn.execute(sa.text(sql)).all()]

        interactions = rows(
            "SELECT source, source_type, source_id, kind, occurred_at, title, body, duration_s, direction, url, "
            "metadata, content_hash, deleted FROM interactions ORDER BY 1, 2, 3")
        chunks = rows(
            "SELECT i.source, i.source_type, i.source_id, c.ordinal, c.content_hash, c.embedded_hash, c.text "
            "FROM chunks c JOIN interactions i ON i.id = c.interaction_id ORDER BY 1, 2, 3, 4")
        vectors = rows(
            "SELECT i.source, i.source_type, i.source_id, c.ordinal, v.content_hash, md5(v.embedding::text) "
            "FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id JOIN interactions i ON i.id = c.interaction_id "
            "ORDER BY 1, 2, 3, 4")
        identities = rows(
            "SELECT source, source_type, source_id, entity_type, name, emails, domains, company_source_id, "
            "resolved FROM source_identities ORDER BY 1, 2, 3")
        # entity ids are random: compare the partition of identities into entities instead
        groups = rows(
            "SELECT entity_type, array_agg(source || '/' || source_type || '/' || source_id "
            "ORDER BY source, source_type, source_id), min(method), count(*) FROM entity_mappings "
            "GROUP BY entity_id, entity_type ORDER BY 2")
        links = rows(
            "SELECT i.source, i.source_type, i.source_id, ie.entity_type, "
            "(SELECT min(m.source || '/' || m.source_type || '/' || m.source_id) FROM entity_mappings m "
            " WHERE m.entity_id = ie.entity_id) FROM interaction_entities ie "
            "JOIN interactions i ON i.id = ie.interaction_id ORDER BY 1, 2, 3, 4, 5")
        dead = rows("SELECT source, stream, record_key, reason FROM dead_letters ORDER BY 1, 2, 3")
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("interactions", "chunks", "chunk_vectors", "source_identities", "entity_mappings",
                            "persons", "companies", "interaction_entities", "participants", "interaction_turns",
                            "dead_letters")}
    return {"counts": counts, "interactions": _digest(interactions), "chunks": _digest(chunks),
            "vectors": _digest(vectors), "identities": _digest(identities), "entities": _digest(groups),
            "links": _digest(links), "dead_letters": dead}


def stop_all(processes) -> None:  # noqa: ANN001
    for proc in processes:
        procs.stop(proc)


def logs_with_tracebacks(logs: Path) -> str:
    out = []
    for path in sorted(logs.glob("*.log")):
        text = path.read_text(errors="replace")
        if "Traceback" in text:
            out.append(f"--- {path.name} ---\n{text[-3000:]}")
    return "\n".join(out)
