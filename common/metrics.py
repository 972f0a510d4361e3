"""Prometheus metrics, named with the domain prefix (``pay_ready_...``).

Two kinds:

- **Event metrics** (counters, histograms, gauges below) are recorded where things happen, in
  gunicorn workers and Celery pool processes. With ``PROMETHEUS_MULTIPROC_DIR`` set (``payready
  up``, the compose file and the Kubernetes manifests set one fresh directory per process group),
  each process writes its own files and :func:`registry` sums them at scrape time; a process that
  exits is marked dead (gunicorn ``child_exit``, Celery ``worker_process_shutdown``).
- **State metrics** (queue depths, dead letters waiting, freshness per source, active runs,
  open circuit breakers) are read from Postgres, Redis and the broker at scrape time by
  :class:`StackCollector`, registered only on the API's ``/metrics``: one scrape, one truth.

Workers: the main process of each Celery worker serves its pool's metrics on
``PAYREADY_METRICS_PORT`` (:func:`serve_worker_metrics`).
"""
from __future__ import annotations

import glob
import logging
import os
import time
from typing import Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, REGISTRY, multiprocess
from prometheus_client.core import GaugeMetricFamily

from common import settings as settings_mod

log = logging.getLogger("payready.metrics")

P = settings_mod.get().metric_prefix

TASKS = Counter(f"{P}tasks_total", "Tasks finished, by task and outcome (ok, retry, error, superseded)",
                ["task", "outcome"])
TASK_SECONDS = Histogram(f"{P}task_duration_seconds", "Task run time", ["task"],
                         buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
SYNC_DURATION = Histogram(f"{P}sync_duration_seconds", "Whole sync run time, trigger to finish",
                          buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
SYNC_RUNS = Counter(f"{P}sync_runs_total", "Sync runs closed, by status", ["status"])
PROCESSING_RATE = Gauge(f"{P}processing_rate", "Records processed per second in the last batch",
                        ["source"], multiprocess_mode="mostrecent")
RECORDS = Counter(f"{P}records_total", "Landing records read, by source and outcome",
                  ["source", "outcome"])
DEAD_LETTERS = Counter(f"{P}dead_letters_total", "Records dead-lettered", ["source"])
RESOLUTION_ACCURACY = Gauge(f"{P}entity_resolution_accuracy",
                            "F1 of entity resolution at the latest labelled evaluation",
                            multiprocess_mode="mostrecent")
CACHE_HIT_RATIO = Gauge(f"{P}cache_hit_ratio", "Hits / lookups of the timeline memory tiers",
                        multiprocess_mode="mostrecent")
CHUNKS_EMBEDDED = Counter(f"{P}chunks_embedded_total", "Chunks embedded and stored")
RATE_LIMIT_WAIT = Counter(f"{P}rate_limit_wait_seconds", "Seconds spent waiting for shared rate limits",
                          ["limit"])
# process_* metrics are absent in multiprocess mode: each process reports its own RSS instead
RESIDENT_MEMORY = Gauge(f"{P}process_resident_memory_bytes", "Resident memory of each process (pid label)",
                        multiprocess_mode="liveall")
HTTP_REQUESTS = Counter(f"{P}http_requests_total", "API requests, by route and status",
                        ["route", "status"])

#: The names StackCollector yields (for deploy/ cross-checks).
STATE_METRICS = (f"{P}queue_depth", f"{P}dead_letters_waiting", f"{P}source_freshness_seconds",
                 f"{P}source_last_success_timestamp_seconds", f"{P}runs_active", f"{P}circuit_open",
                 f"{P}up")


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MEMORY_EVERY_S = 5.0  # resident memory is read at most this often per process (it was a file open per request)
_memory_noted: tuple[int, float] = (0, 0.0)  # (pid, monotonic time) of the last reading


def note_memory() -> None:
    """Record this process's resident memory: one read of /proc/self/statm, at most every
    ``MEMORY_EVERY_S`` per process (the first call in a process always reads)."""
    global _memory_noted
    now = time.monotonic()
    pid, at = _memory_noted
    if pid == os.getpid() and now - at < MEMORY_EVERY_S:
        return
    _memory_noted = (os.getpid(), now)
    try:
        with open("/proc/self/statm") as f:
            RESIDENT_MEMORY.set(int(f.read().split()[1]) * _PAGE)
    except (OSError, ValueError, IndexError):
        pass


def multiprocess_dir() -> Optional[str]:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry() -> CollectorRegistry:
    """Event metrics of every process of this group (multiprocess), else of this process."""
    if multiprocess_dir():
        reg = CollectorRegistry()
        _FilesCollector(reg)
        return reg
    return REGISTRY


class _FilesCollector(multiprocess.MultiProcessCollector):
    """Skips metric files a process has created but not yet sized (an empty file would fail the
    whole scrape with struct.error; that process's values appear at the next scrape)."""

    def collect(self):  # noqa: ANN201
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(path) >= 8:
                    files.append(path)
            except OSError:  # marked dead meanwhile
                pass
        return self.merge(files, accumulate=True)


def mark_process_dead(pid: Optional[int]) -> None:
    if pid and multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def serve_worker_metrics(settings: settings_mod.Settings) -> Optional[int]:
    """Serve this worker group's metrics on ``PAYREADY_METRICS_PORT`` (0: not served)."""
    if not settings.metrics_port:
        return None
    from prometheus_client import start_http_server

    start_http_server(settings.metrics_port, addr=settings.metrics_host,
                      registry=registry())
    log.info("metrics on :%d (multiprocess dir %s)", settings.metrics_port, multiprocess_dir())
    return settings.metrics_port


class StackCollector:
    """State metrics read at scrape time; each part that cannot be read is reported as ``up 0``."""

    def __init__(self, settings: settings_mod.Settings):
        self.settings = settings

    def describe(self) -> list:
        return []  # collected lazily: registering must not touch the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from common import status

        s = self.settings
        up = GaugeMetricFamily(f"{P}up", "1 when the part answers the scrape", labels=["part"])
        report = status.collect(s)
        for part in ("database", "redis", "broker"):
            up.add_metric([part], 1.0 if report[part].get("ok") else 0.0)
        depth = GaugeMetricFamily(f"{P}queue_depth", "Messages waiting per queue", labels=["queue"])
        for queue, n in (report["broker"].get("queue_depths") or {}).items():
            if n is not None:
                depth.add_metric([queue], float(n))
        yield depth
        database = report["database"]
        if database.get("ok"):
            yield from self._database_state(database)
        yield from self._circuits(report)
        yield up

    def _database_state(self, database: dict) -> Iterator[GaugeMetricFamily]:
        import datetime as dt

        fresh = GaugeMetricFamily(f"{P}source_freshness_seconds", "Seconds since the last successful sync",
                                  labels=["source"])
        last = GaugeMetricFamily(f"{P}source_last_success_timestamp_seconds",
                                 "Unix time of the last successful sync", labels=["source"])
        now = dt.datetime.now(dt.timezone.utc)
        for source, at in (database.get("last_success") or {}).items():
            if at is not None:
                fresh.add_metric([source], (now - at).total_seconds())
                last.add_metric([source], at.timestamp())
        yield fresh
        yield last
        dead = GaugeMetricFamily(f"{P}dead_letters_waiting", "Dead letters not yet re-driven",
                                 labels=["source"])
        for source, n in (database.get("dead_letters") or {}).items():
            dead.add_metric([source], float(n))
        yield dead
        active = GaugeMetricFamily(f"{P}runs_active", "Sync runs pending or running")
        active.add_metric([], float(database.get("runs_active") or 0))
        yield active

    def _circuits(self, report: dict) -> Iterator[GaugeMetricFamily]:
        circuit = GaugeMetricFamily(f"{P}circuit_open", "1 while a circuit breaker is open", labels=["name"])
        for name, state in (report.get("rate_limits") or {}).items():
            circuit.add_metric([name], 1.0 if state.get("circuit_open") else 0.0)
        yield circuit
