"""gunicorn settings for the API (`gunicorn -c deploy/gunicorn.conf.py 'api:create_app()'`).

Prometheus multiprocess mode: each worker writes its metric files under PROMETHEUS_MULTIPROC_DIR
(one fresh directory per API group: `payready up`, compose and Kubernetes create it); a worker
that exits is marked dead so its live gauges stop counting, its counters stay in the sums.

The audit log: each worker queues reads and writes them every 0.25 s (common/audit.py); a worker
that stops writes what is still queued before it goes (:func:`worker_exit`, besides atexit).
"""
import os

# Workers and threads for 2 cores, measured with bench/api.py at 100,000 interactions (2026-11-28,
# loaded machine, docs/benchmarks.md "API timeline"): the timeline's warm requests wait on Redis
# (and cold ones on Postgres), so a worker needs threads to overlap those waits; but CPU work holds
# the GIL, so more processes or more threads than this only add switching. Warm requests/s as a
# share of the same run's /healthz ceiling: 2 x 8 gthread 0.35, 2 x 16 0.27, 2 x 4 0.30, 4 x 4 0.20;
# the sync worker (one request at a time, no keep-alive) served 168 req/s where 2 x 8 served 550-600.
# Alternating 2 x 8, 2 x 2, 2 x 4 twice at 20k (load 6-11), warm paced at 1,100 offered: 2 x 8
# 664 / 622 req/s at 1.52 / 1.70 ms API CPU per request, 2 x 2 501 / 554 at 1.81 / 1.61, 2 x 4
# 491 / 610 at 1.98 / 1.64: no setting beats 2 x 8 beyond the noise; 6 sync workers 550 at 2.01.
# 2026-11-28, hot tier off (every request a Redis read, as at 1M), load 6-12: the gevent worker (with
# psycogreen for psycopg2) served 580-629 warm req/s saturated where 2 x 8 gthread served 1,028-1,470;
# 2 x 1 gthread used 1.25 ms CPU per paced request against 2 x 8's 1.33: within the noise. Not kept.
# A flag on the command line (`--workers N`) still overrides these.
workers = 2
worker_class = "gthread"
threads = 8


def worker_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature, runs in the worker
    app = getattr(worker, "wsgi", None)
    writer = getattr(app, "extensions", {}).get("payready_audit")
    if writer is not None:
        writer.flush()


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
