"""The latest labelled evaluation, stored in analytics_cache and exported as a Prometheus gauge.

``pay_ready_entity_resolution_accuracy`` is the mean pairwise F1 of persons and companies at the
latest evaluation (bench/resolve.py --store). It is stored in the database so every process (the
API's /metrics, the workers) exports the same figure.
"""
from __future__ import annotations

import json
from typing import Optional

import sqlalchemy as sa

from common import db, metrics
from common.settings import Settings

CACHE_KEY = "entity_resolution_evaluation"


def record(settings: Settings, result: dict) -> float:
    value = accuracy_of(result)
    with db.transaction(settings) as conn:
        conn.execute(sa.text(
            "INSERT INTO analytics_cache (key, value, computed_at) VALUES (:k, CAST(:v AS jsonb), now()) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, computed_at = now()"),
            {"k": CACHE_KEY, "v": json.dumps(result | {"accuracy": value})})
    metrics.RESOLUTION_ACCURACY.set(value)
    return value


def accuracy_of(result: dict) -> float:
    ours = result.get("ours", result)
    return round((ours["person"]["f1"] + ours["company"]["f1"]) / 2, 5)


def export(settings: Settings) -> Optional[float]:
    """Set the gauge from the stored evaluation (None when there is none yet)."""
    with db.transaction(settings) as conn:
        value = conn.execute(sa.text("SELECT value FROM analytics_cache WHERE key = :k"), {"k": CACHE_KEY}).scalar()
    if not value:
        return None
    metrics.RESOLUTION_ACCURACY.set(value["accuracy"])
    return value["accuracy"]
