"""Prometheus multiprocess mode for real: /metrics under gunicorn with two workers sums both, and a
Celery worker's main process serves the counts of its two pool processes."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families

from common import procs
from tests.conftest import ROOT, free_port


def _get(url: str, timeout: float = 5) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def _samples(text: str, name: str) -> list:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def _wait_http(url: str, proc: subprocess.Popen, log, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            _get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


def _env(domain, tmp_path, **extra) -> dict:  # noqa: ANN001
    from common.cli import _process_env

    folder = tmp_path / "prom"
    folder.mkdir()
    return {**_process_env(domain), "PROMETHEUS_MULTIPROC_DIR": str(folder), **extra}


def test_api_metrics_add_up_across_gunicorn_workers(domain, tmp_path):
    from resolve_worker import accuracy

    accuracy.record(domain, {"ours": {"person": {"f1": 0.998}, "company": {"f1": 1.0}}})  # a labelled evaluation
    port = free_port()
    log = tmp_path / "gunicorn.log"
    proc = procs.start([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind",
                        f"127.0.0.1:{port}", "--workers", "2", "api:create_app()"],
                       {**_env(domain, tmp_path), "PYTHONPATH": str(ROOT)}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/healthz", proc, log)
        prefix = domain.metric_prefix

        def healthz_count() -> float:
            _, text = _get(f"{base}/metrics")
            return sum(s.value for s in _samples(text, f"{prefix}http_requests_total")
                       if s.labels == {"route": "/healthz", "status": "200"})

        sent, pids, before = 0, set(), healthz_count()
        with ThreadPoolExecutor(8) as pool:
            for _ in range(10):  # until both workers have answered (the kernel picks the worker)
                sent += sum(1 for status, _ in pool.map(lambda _: _get(f"{base}/healthz"), range(40))
                            if status == 200)
                _, text = _get(f"{base}/metrics")
                pids = {s.labels["pid"] for s in _samples(text, f"{prefix}process_resident_memory_bytes") if s.value > 0}
                if len(pids) >= 2:
                    break
        assert len(pids) >= 2, "both gunicorn workers recorded metrics"
        assert healthz_count() - before == sent, "one sum over both workers, counting every request"
        _, text = _get(f"{base}/metrics")
        assert f"# TYPE {prefix}queue_depth gauge" in text, "state metrics are read at scrape time"
        assert [s.value for s in _samples(text, f"{prefix}up") if s.labels["part"] == "database"] == [1.0]
        assert {s.value for s in _samples(text, f"{prefix}entity_resolution_accuracy")} == {0.999}, \
            "the API exports the stored evaluation, though it ran elsewhere"
    finally:
        procs.stop(proc)


def test_worker_main_process_serves_metrics_of_its_pool(domain, tmp_path):
    from common.celery_app import RECOVER_STALE_RUNS, app

    port = free_port()
    log = tmp_path / "worker.log"
    env = _env(domain, tmp_path, PAYREADY_METRICS_PORT=str(port))
    proc = procs.start(procs.worker_command(domain, "ingest", concurrency=2, name="metrics"), env, log)
    try:
        procs.wait_for_workers(app, [domain.queue("ingest")], timeout=90)
        results = [app.send_task(RECOVER_STALE_RUNS, kwargs={"stale_after": 86_400}) for _ in range(30)]
        assert all(r.get(timeout=60) == [] for r in results)
        prefix = domain.metric_prefix
        _, text = _get(f"http://127.0.0.1:{port}/metrics")
        done = sum(s.value for s in _samples(text, f"{prefix}tasks_total")
                   if s.labels.get("task") == RECOVER_STALE_RUNS)
        assert done == 30, "the main process sums what both pool processes counted"
        pids = {s.labels["pid"] for s in _samples(text, f"{prefix}process_resident_memory_bytes") if s.value > 0}
        assert len(pids) == 2, "two pool processes ran tasks"
    finally:
        procs.stop(proc)
