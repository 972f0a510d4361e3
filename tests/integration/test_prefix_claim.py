"""A Redis key prefix belongs to one domain (common/prefix.py): two domains with the same initials
and no PAYREADY_REDIS_PREFIX would share every key, so the second one's start fails (API factory,
Celery configure, CLI, a worker process) naming the variable; the same domain starting again is
fine, and an explicit prefix of its own resolves the clash."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import redis

from api import create_app
from common import procs, settings as settings_mod
from common.celery_app import app as celery_app, configure
from common.cli import _process_env
from common.settings import ConfigError
from tests.conftest import ROOT, make_settings, release_prefix


@pytest.fixture()
def twins(stack_urls):  # noqa: ANN001
    """Two new domains whose derived prefixes are the same: q_1_2_... and qx_1x_2x_..."""
    letters = "q" + uuid.uuid4().hex[:11]
    a = make_settings(stack_urls, "_".join(letters), redis_prefix=None)
    b = make_settings(stack_urls, "_".join(c + "x" for c in letters), redis_prefix=None)
    assert a.key_prefix == b.key_prefix == letters + ":" and a.domain != b.domain
    before = settings_mod._current
    yield a, b
    settings_mod.override(before)
    configure(celery_app, settings_mod.get())
    client = redis.Redis.from_url(a.redis_url)
    for s in (a, b, settings_mod._replace(b, redis_prefix=f"{b.domain}:")):
        release_prefix(s)
    assert client.get(a.key_prefix + "domain") is None


def _run(cmd: list[str], settings) -> subprocess.CompletedProcess:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYREADY_")}
    return subprocess.run(cmd, cwd=ROOT, env={**env, **_process_env(settings)}, capture_output=True, text=True,
                          timeout=120)


def _names_both(message: str, a, b) -> None:  # noqa: ANN001
    assert "PAYREADY_REDIS_PREFIX" in message and repr(a.key_prefix) in message
    assert repr(a.domain) in message and repr(b.domain) in message


def test_second_domain_with_the_same_initials_fails_at_every_start(twins):  # noqa: ANN001
    a, b = twins
    create_app(a)
    create_app(a)  # the same domain starting again (a restart, a second process) is fine
    configure(celery_app, a)
    with pytest.raises(ConfigError) as api_error:
        create_app(b)
    _names_both(str(api_error.value), a, b)
    assert "(derived from the domain's initials)" in str(api_error.value)
    with pytest.raises(ConfigError) as celery_error:
        configure(celery_app, b)
    _names_both(str(celery_error.value), a, b)

    cli = _run([sys.executable, "-m", "common.cli", "status", "--json"], b)
    assert cli.returncode == 2 and "configuration error" in cli.stderr, cli.stderr[-2000:]
    _names_both(cli.stderr, a, b)
    worker = _run(procs.worker_command(b, "ingest"), b)
    assert worker.returncode != 0
    _names_both(worker.stdout + worker.stderr, a, b)
    assert redis.Redis.from_url(a.redis_url).get(a.key_prefix + "domain") == a.domain.encode(), \
        "the first domain keeps its prefix"


def test_an_explicit_prefix_of_its_own_resolves_the_clash(twins):  # noqa: ANN001
    a, b = twins
    create_app(a)
    own = settings_mod._replace(b, redis_prefix=f"{b.domain}:")
    create_app(own)
    configure(celery_app, own)
    cli = _run([sys.executable, "-m", "common.cli", "status", "--json"], own)
    assert "configuration error" not in cli.stderr and cli.returncode in (0, 1), cli.stderr[-2000:]
    client = redis.Redis.from_url(a.redis_url)
    assert client.get(a.key_prefix + "domain") == a.domain.encode()
    assert client.get(own.key_prefix + "domain") == b.domain.encode()
