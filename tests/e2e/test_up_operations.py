"""`payready up` as operated: beat syncs on schedule, Flower (basic auth from a secret file) shows
the three worker types with their queues, /metrics and /readyz answer, workers serve metrics."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.conftest import ROOT, free_port


def _get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _until(check, proc, log, timeout: float, what: str):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what} not seen in {timeout:.0f}s\n{log.read_text()[-3000:]}")


def test_up_beat_syncs_on_schedule_flower_shows_workers_metrics_and_readiness(tmp_path):
    api, flower, metrics_base = free_port(), free_port(), free_port()
    secret = tmp_path / "flower_auth"
    secret.write_text("ops:s3cret\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYREADY_")}
    env.update(PAYREADY_DATA_DIR=str(tmp_path / "data"), PAYREADY_API_PORT=str(api),
               PAYREADY_FLOWER_PORT=str(flower), PAYREADY_FLOWER_BASIC_AUTH_FILE=str(secret),
               PAYREADY_METRICS_PORT=str(metrics_base), PAYREADY_SOURCES="hubspot",
               PAYREADY_SYNC_INTERVALS="hubspot=10")
    log = tmp_path / "up.log"
    proc = subprocess.Popen([sys.executable, "-m", "common.cli", "up"], cwd=ROOT, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{api}"
        _until(lambda: _get(f"{base}/healthz")[0] == 200, proc, log, 120, "the API")

        flower_url = f"http://127.0.0.1:{flower}/api/workers?refresh=1"
        _until(lambda: _get(flower_url)[0] == 401, proc, log, 120, "Flower asking for credentials")
        assert _get(flower_url, auth="ops:wrong")[0] == 401

        def queues_in_flower():  # noqa: ANN202
            status, body = _get(flower_url, auth="ops:s3cret")
            if status != 200:
                return None
            seen = {q["name"] for info in json.loads(body).values() for q in info.get("active_queues") or []}
            return seen if {"pay_ready.ingest", "pay_ready.resolve", "pay_ready.embed"} <= seen else None

        _until(queues_in_flower, proc, log, 120, "the three worker types in Flower")

        def synced_by_beat():  # noqa: ANN202
            status, body = _get(f"{base}/readyz")
            return json.loads(body)["checks"]["last_success"].get("hubspot")

        _until(synced_by_beat, proc, log, 240, "a beat-fired sync of hubspot")
        status, body = _get(f"{base}/readyz")
        verdict = json.loads(body)
        assert status == 200 and verdict["status"] == "ready" and verdict["failures"] == {}, verdict
        assert set(verdict["checks"]) >= {"database", "redis", "broker", "rate_limits", "last_success"}

        status, text = _get(f"{base}/metrics")
        assert status == 200 and b'pay_ready_up{part="broker"} 1.0' in text
        assert b"pay_ready_source_freshness_seconds{source=\"hubspot\"}" in text
        status, text = _get(f"http://127.0.0.1:{metrics_base}/metrics")  # the ingest worker
        assert status == 200 and b'task="ingest_worker.tasks.dispatch_sync"' in text
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
