"""The one Celery app: queues, routing, serialization and the task decorator every task uses.

Queues are ``<domain>.ingest``, ``<domain>.resolve`` and ``<domain>.embed``, each bound to its own
direct exchange and routing key (a bare ``Queue(name)`` would bind them all to one exchange).
Tasks are routed by module: everything in ``ingest_worker.tasks`` goes to the ingest queue, and so
on, so a task never names its queue. :func:`task` gives each task metrics, a log context and the
retry policy, so task bodies hold only logic.
"""
from __future__ import annotations

import functools
import logging
import random
import time
from typing import Any, Callable, Optional

from celery import Celery, Task, signals
from celery.exceptions import Retry
from kombu import Exchange, Queue, pools

from common import embedded, logctx, metrics, prefix, runs, settings as settings_mod
from common.schedule import beat_schedule
# Task names live in common.tasknames (common.schedule needs them too); tasks and callers spell them ca.NAME
from common.tasknames import (ANALYTICS, DISPATCH_SYNC, EMBED_PENDING, FINISH_RUN,  # noqa: F401
                              PROCESS_SOURCE, PRUNE_RETENTION, RECOVER_STALE_RUNS, REDRIVE_DEAD_LETTERS,
                              RESOLVE_ENTITIES, TRIGGER_SOURCE, WAIT_SOURCE, WARM_CACHES)

log = logging.getLogger("payready.task")

INGEST, RESOLVE, EMBED = "ingest", "resolve", "embed"
PHASE_QUEUES = (INGEST, RESOLVE, EMBED)

_MODULE_QUEUE = {"ingest_worker": INGEST, "resolve_worker": RESOLVE, "embed_worker": EMBED}


def _route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> Optional[dict]:
    phase = _MODULE_QUEUE.get(name.split(".", 1)[0])
    if phase is None:
        return None
    s = settings_mod.get()
    return {"queue": s.queue(phase), "exchange": s.queue(phase), "routing_key": s.queue(phase)}


def configure(app: Celery, s: settings_mod.Settings) -> None:
    """Apply settings to the app; called at import and again when tests change settings."""
    s = embedded.resolve_urls(s)
    prefix.claim(s)  # before any key is used under the prefix: another domain's keys are not ours
    broker = s.broker_url or "memory://"  # no broker configured: fail on first send, not at import
    app.conf.update(
        broker_url=broker,
        result_backend=_result_backend(s),
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=24 * 3600,
        timezone="UTC",
        enable_utc=True,
        task_queues=[Queue(s.queue(p), Exchange(s.queue(p), type="direct"), routing_key=s.queue(p))
                     for p in PHASE_QUEUES],
        task_default_queue=s.queue(INGEST),
        task_default_exchange=s.queue(INGEST),
        task_default_routing_key=s.queue(INGEST),
        task_routes=(_route,),
        # one message at a time per process: tasks are batch-sized and long, prefetch would hoard
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        # Redis redelivers an unacknowledged message after this long: it must exceed the longest
        # task. Process tasks are bounded (PAYREADY_PROCESS_BATCHES_PER_TASK batches, then they
        # re-enqueue themselves), embed and resolve tasks last minutes at most; a worker killed
        # outright is handled sooner by stale-run recovery (common/recovery.py), not by redelivery.
        broker_transport_options={"visibility_timeout": s.visibility_timeout_seconds,
                                  "global_keyprefix": s.celery_key_prefix},
        result_backend_transport_options={"global_keyprefix": s.celery_key_prefix},
        worker_hijack_root_logger=False,
    )
    app.conf.beat_schedule = beat_schedule(s)
    # Queues and connection pools are cached on first use; a new domain (tests, the CLI) brings new
    # queues and a new key prefix, so drop them and let the next use build them from this config.
    app.amqp.__dict__.pop("queues", None)
    if app._pool is not None:
        app._pool = None
        pools.reset()  # kombu's registry would hand the same (old-prefix) pool back for this URL
    app.amqp._producer_pool = None
    # the result backend is cached too (per thread); chords keep their counters under its prefix
    if hasattr(app._local, "backend"):
        del app._local.backend


def _result_backend(s: settings_mod.Settings) -> Optional[str]:
    # Chords need a result backend; Redis (the cache) serves, even with RabbitMQ as broker.
    url = s.redis_url
    if url and url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://"):].split("?", 1)[0] + "?virtual_host=2"
    return url


app = Celery("payready", include=["ingest_worker.tasks", "resolve_worker.tasks", "embed_worker.tasks"])
configure(app, settings_mod.get())


class PayReadyTask(Task):
    """Base for every task: retry policy defaults and failure bookkeeping for runs."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = 5
    retry_backoff = True
    retry_backoff_max = 300
    retry_jitter = True

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # noqa: ANN001
        run_id = kwargs.get("run_id") if kwargs else None
        if run_id:
            from common import runs

            try:
                runs.fail_run(settings_mod.get(), run_id, f"{self.name}: {type(exc).__name__}: {exc}")
            except Exception:  # the failure is already being reported; never mask it
                log.exception("could not mark run %s failed", run_id)


def task(name: str, *, retry_on: tuple[type[BaseException], ...] = (), **options: Any) -> Callable:
    """Register a task with metrics, log context and retry policy.

    ``retry_on`` lists exceptions that mean "try again later" (connection errors, 5xx, 429); any
    other exception fails the task at once, since repeating a bug only repeats it.
    """

    def decorate(fn: Callable) -> Task:
        @functools.wraps(fn)
        def run(self: Task, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = "ok"
            run_id = kwargs.get("run_id", "-")
            try:
                with logctx.bind(task=name.rsplit(".", 1)[-1], run=run_id, source=kwargs.get("source")):
                    if kwargs.get("run_id") and not runs.is_active(settings_mod.get(), run_id):
                        raise runs.RunSuperseded(f"run {run_id} is no longer active")
                    return fn(self, *args, **kwargs)
            except runs.RunSuperseded as exc:
                # a message of a run that recovery replaced (or that ended): stop without writing
                outcome = "superseded"
                log.warning("task=%s run=%s superseded: %s", name.rsplit(".", 1)[-1], run_id, exc)
                return {"superseded": run_id}
            except Retry:
                outcome = "retry"  # the task re-scheduled itself (polling): not an error
                raise
            except retry_on as exc:
                outcome = "retry"
                # exponential backoff with full jitter, so retrying workers do not stampede
                ceiling = min(PayReadyTask.retry_backoff_max, 2 ** (self.request.retries + 1))
                raise self.retry(exc=exc, countdown=random.uniform(0, ceiling))
            except Exception:
                outcome = "error"
                raise
            finally:
                elapsed = time.perf_counter() - started
                metrics.TASKS.labels(task=name, outcome=outcome).inc()
                metrics.TASK_SECONDS.labels(task=name).observe(elapsed)
                metrics.note_memory()
                log.info("task=%s run=%s outcome=%s seconds=%.3f", name.rsplit(".", 1)[-1], run_id,
                         outcome, elapsed)

        return app.task(name=name, bind=True, base=PayReadyTask, **options)(run)

    return decorate


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _log_context(logger, **_: Any) -> None:  # noqa: ANN001
    logctx.install(logger)


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # pooled DB connections must not cross a fork
    from common import db

    db.dispose_all()


@signals.celeryd_init.connect
def _serve_metrics(**_: Any) -> None:
    """The worker's main process serves /metrics for all its pool processes (multiprocess mode)."""
    metrics.serve_worker_metrics(settings_mod.get())


@signals.worker_process_shutdown.connect
def _pool_process_gone(pid: Optional[int] = None, **_: Any) -> None:
    metrics.mark_process_dead(pid)
