"""Shared fixtures: a real Postgres (embedded with pgvector, or PAYREADY_TEST_DATABASE_URL), a real
Redis (embedded, or PAYREADY_TEST_REDIS_URL), a fresh domain schema per test module, and real
Celery worker subprocesses stopped by PID.
"""
from __future__ import annotations

import gc
import os
import socket
import sys
import uuid
from types import SimpleNamespace
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Settings are read at import by common.celery_app: make sure nothing configured outside leaks in.
for var in list(os.environ):
    if var.startswith("PAYREADY_") and not var.startswith("PAYREADY_TEST_"):
        del os.environ[var]

from common import embedded, procs, settings as settings_mod  # noqa: E402
from common.settings import Settings  # noqa: E402

LAYERS = ("unit", "integration", "e2e")

# CI explores the same examples on every run, so a property test cannot fail a submission by the
# luck of the draw; a local run explores new ones each time and keeps what failed in .hypothesis/
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    # The folder is the layer: every test carries its layer's marker, so `-m unit` always works.
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def stack_urls(tmp_path_factory) -> embedded.StackUrls:  # noqa: ANN001
    """Database, Redis and broker URLs for the whole session."""
    db_url = os.environ.get("PAYREADY_TEST_DATABASE_URL")
    redis_url = os.environ.get("PAYREADY_TEST_REDIS_URL")
    stack = None
    if not (db_url and redis_url):
        stack = embedded.EmbeddedStack(Path(os.environ.get("PAYREADY_TEST_DATA_DIR")
                                            or tmp_path_factory.mktemp("stack")))
        urls = stack.start()
        db_url, redis_url = db_url or urls.database_url, redis_url or urls.redis_url
        broker = os.environ.get("PAYREADY_TEST_BROKER_URL") or urls.broker_url
    else:
        broker = os.environ.get("PAYREADY_TEST_BROKER_URL") or redis_url
    yield embedded.StackUrls(database_url=db_url, redis_url=redis_url, broker_url=broker, owner_pid=os.getpid())
    if stack is not None:
        # Celery's AsyncResult unsubscribes from the result backend when it is collected: collect
        # the session's leftovers while Redis is still up, not after (an unraisable exception then)
        gc.collect()
        stack.stop()


def make_settings(urls: embedded.StackUrls, domain: str, **extra: object) -> Settings:
    """Settings of ``domain`` on the session's stack. Its Redis prefix is ``<domain>:`` unless the
    test gives ``redis_prefix`` (None: the derived initials): test domains t_<hex> would otherwise
    share 16 prefixes, which start-up refuses (common/prefix.py)."""
    env = {**urls.as_env(), "PAYREADY_DOMAIN": domain}
    extra.setdefault("redis_prefix", f"{domain}:")
    return settings_mod._replace(settings_mod.load(env), **extra)


def activate(settings: Settings) -> None:
    """Make ``settings`` the process-wide settings, Celery app included."""
    from common.celery_app import app, configure

    settings_mod.override(settings)
    configure(app, settings)


def drop_domain(settings: Settings) -> None:
    import sqlalchemy as sa

    from common import db

    with db.transaction(settings) as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE'))
    db.dispose_all()
    release_prefix(settings)


def release_prefix(settings: Settings) -> None:
    """Delete the domain's claim on its Redis prefix (common/prefix.py), if it holds it."""
    import redis

    if not settings.redis_url:
        return
    client = redis.Redis.from_url(settings.redis_url)
    key = settings.key_prefix + "domain"
    if client.get(key) == settings.domain.encode():
        client.delete(key)


@pytest.fixture(scope="module")
def domain(stack_urls) -> Settings:  # noqa: ANN001
    """A fresh, migrated domain schema of its own for each test module."""
    from common.cli import migrate

    settings = make_settings(stack_urls, f"t_{uuid.uuid4().hex[:10]}")
    activate(settings)
    migrate(settings)
    yield settings
    drop_domain(settings)


@pytest.fixture(scope="module")
def workers(domain, tmp_path_factory):  # noqa: ANN001
    """Real ingest, resolve and embed worker processes for the module's domain."""
    from common.celery_app import app
    from common.cli import _process_env

    logs = tmp_path_factory.mktemp("worker-logs")
    env = {**_process_env(domain), "PAYREADY_LOG_LEVEL": "INFO"}
    started = [procs.start(procs.worker_command(domain, phase), env, logs / f"{phase}.log")
               for phase in ("ingest", "resolve", "embed")]
    try:
        procs.wait_for_workers(app, [domain.queue(p) for p in ("ingest", "resolve", "embed")], timeout=90)
        yield SimpleNamespace(procs=started, logs=logs)
    finally:
        for proc in started:
            procs.stop(proc)
        for path in sorted(logs.glob("*.log")):
            text = path.read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {path.name} ---\n{text[-4000:]}")
