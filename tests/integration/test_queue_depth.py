"""Queue depths read from the real broker: messages the project's Celery app sent, with no worker
taking them, are counted by `payready status`, trip /readyz past PAYREADY_QUEUE_DEPTH_LIMIT and are
exported as the queue_depth gauge. On Redis they live under the app's key prefix
(``<prefix>celery:<domain>.ingest``, plus one list per priority step), where the count must look."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import redis
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from common import settings as settings_mod, status
from tests.conftest import ROOT, activate

RABBITMQ_URL = os.environ.get("PAYREADY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
WAITING = 3  # messages sent; the limit is below it


def _send(app, n: int, queue: str | None = None) -> None:  # noqa: ANN001
    from common.celery_app import RECOVER_STALE_RUNS

    for i in range(n):  # one with a priority: kombu's Redis transport keeps it on a list of its own
        app.send_task(RECOVER_STALE_RUNS, kwargs={"stale_after": 86_400}, priority=5 if i == 0 else None,
                      **({"queue": queue, "exchange": queue, "routing_key": queue} if queue else {}))


def _gauge(text: str, prefix: str) -> dict[str, float]:
    return {s.labels["queue"]: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == f"{prefix}queue_depth"}


@pytest.fixture()
def waiting(domain):  # noqa: ANN001
    """The module's domain with Redis keys of its own and a small depth limit, WAITING ingest
    messages on its broker and nobody consuming; only its own keys are removed afterwards."""
    from common.celery_app import app

    s = settings_mod._replace(domain, redis_prefix=f"{domain.domain}:", queue_depth_limit=WAITING - 1)
    activate(s)
    _send(app, WAITING)
    try:
        yield s
    finally:
        activate(domain)
        with Connection(s.broker_url) as broker:  # the broker may be another database than the cache
            for client in (redis.Redis.from_url(s.redis_url), broker.default_channel.client):
                keys = list(client.scan_iter(match=f"{s.key_prefix}*"))
                if keys:
                    client.delete(*keys)


def test_status_counts_the_messages_waiting_under_the_key_prefix(waiting):  # noqa: ANN001
    s = waiting
    with Connection(s.broker_url) as broker:  # no key prefix on this client: names as Redis holds them
        listed = broker.default_channel.client.llen(f"{s.celery_key_prefix}{s.queue('ingest')}")
    assert listed == WAITING - 1, "the list is the prefixed one (the message with a priority is beside it)"
    depths = status.collect(s)["broker"]["queue_depths"]
    assert depths == {s.queue("ingest"): WAITING, s.queue("resolve"): 0, s.queue("embed"): 0}


def test_cli_status_reports_the_depth(waiting):  # noqa: ANN001
    from common.cli import _process_env

    s = waiting
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYREADY_")}
    env.update(_process_env(s), PAYREADY_REDIS_PREFIX=s.redis_prefix, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "common.cli", "status", "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["broker"]["queue_depths"][s.queue("ingest")] == WAITING


def test_readyz_fails_and_metrics_export_the_depth(waiting):  # noqa: ANN001
    from api import create_app
    from common import metrics

    s = waiting
    client = create_app(s).test_client()
    resp = client.get("/readyz")
    assert resp.status_code == 503, resp.get_json()
    assert set(resp.get_json()["failures"]) == {f"queue:{s.queue('ingest')}"}, resp.get_json()["failures"]
    gauge = _gauge(client.get("/metrics").get_data(as_text=True), metrics.P)
    assert gauge == {s.queue("ingest"): WAITING, s.queue("resolve"): 0, s.queue("embed"): 0}


def _rabbitmq_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_rabbitmq_depths_per_queue_and_none_for_a_queue_never_declared(domain):  # noqa: ANN001
    """A passive declare of a missing queue closes its AMQP channel; the queues after it are still counted."""
    from common.celery_app import app

    s = settings_mod._replace(domain, broker_url=RABBITMQ_URL, queue_depth_limit=WAITING - 1)
    activate(s)
    try:
        _send(app, WAITING, queue=s.queue("embed"))
        report = status.collect(s)
        assert report["broker"]["queue_depths"] == {s.queue("ingest"): None, s.queue("resolve"): None,
                                                    s.queue("embed"): WAITING}
        assert set(status.readiness(s, report)["failures"]) == {f"queue:{s.queue('embed')}"}
    finally:
        activate(domain)
        with Connection(RABBITMQ_URL) as conn:
            channel = conn.channel()
            for phase in ("ingest", "resolve", "embed"):
                channel.queue_delete(s.queue(phase))
                channel.exchange_delete(s.queue(phase))
