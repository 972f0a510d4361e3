"""Task names: constants, so callers and beat never spell them twice.

A module of their own, importing nothing: ``common.schedule`` needs the names and
``common.celery_app`` needs the schedule, so the names cannot live in ``celery_app`` without an
import cycle (``import common.schedule`` alone would fail).
"""

TRIGGER_SOURCE = "ingest_worker.tasks.trigger_source"
WAIT_SOURCE = "ingest_worker.tasks.wait_source"
PROCESS_SOURCE = "ingest_worker.tasks.process_source"
RESOLVE_ENTITIES = "resolve_worker.tasks.resolve_entities"
ANALYTICS = "resolve_worker.tasks.refresh_analytics"
FINISH_RUN = "resolve_worker.tasks.finish_run"
EMBED_PENDING = "embed_worker.tasks.embed_pending"
DISPATCH_SYNC = "ingest_worker.tasks.dispatch_sync"
RECOVER_STALE_RUNS = "ingest_worker.tasks.recover_stale_runs"
REDRIVE_DEAD_LETTERS = "ingest_worker.tasks.redrive_dead_letters"
WARM_CACHES = "resolve_worker.tasks.warm_caches"
PRUNE_RETENTION = "resolve_worker.tasks.prune_retention"
