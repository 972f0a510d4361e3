"""Prometheus metrics, named with the domain prefix (``pay_ready_...``).

Names follow DESIGN §8. Workers and the API each expose their own registry; multiprocess
aggregation under gunicorn and prefork workers is configured by PROMETHEUS_MULTIPROC_DIR.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common import settings as settings_mod

P = settings_mod.get().metric_prefix

TASKS = Counter(f"{P}tasks_total", "Tasks finished, by task and outcome (ok, retry, error)",
                ["task", "outcome"])
TASK_SECONDS = Histogram(f"{P}task_duration_seconds", "Task run time", ["task"],
                         buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
SYNC_DURATION = Histogram(f"{P}sync_duration_seconds", "Whole sync run time, trigger to finish",
                          buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
PROCESSING_RATE = Gauge(f"{P}processing_rate", "Records processed per second in the last batch",
                        ["source"])
RECORDS = Counter(f"{P}records_total", "Landing records read, by source and outcome",
                  ["source", "outcome"])
DEAD_LETTERS = Counter(f"{P}dead_letters_total", "Records dead-lettered", ["source"])
RESOLUTION_ACCURACY = Gauge(f"{P}entity_resolution_accuracy",
                            "F1 of entity resolution at the latest labelled evaluation")
CACHE_HIT_RATIO = Gauge(f"{P}cache_hit_ratio", "Hits / lookups of the timeline memory tiers")
CHUNKS_EMBEDDED = Counter(f"{P}chunks_embedded_total", "Chunks embedded and stored")
FRESHNESS = Gauge(f"{P}source_freshness_seconds", "Seconds since the last successful sync",
                  ["source"])
