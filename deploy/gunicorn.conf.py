"""gunicorn settings for the API (`gunicorn -c deploy/gunicorn.conf.py 'api:create_app()'`).

Prometheus multiprocess mode: each worker writes its metric files under PROMETHEUS_MULTIPROC_DIR
(one fresh directory per API group: `payready up`, compose and Kubernetes create it); a worker
that exits is marked dead so its live gauges stop counting, its counters stay in the sums.
"""
import os


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
