"""Labelled evaluation: identities and ground truth from ``payready generate`` data, pairwise scores.

The generator writes landing files and ``ground_truth.jsonl`` (one line per identity with the
person or company it really is). :func:`load_generated` runs the real source processors over the
files (no database) and returns the identities as the resolver sees them; :func:`pairwise`
compares any clustering with the truth as pairwise precision, recall and F1 per entity type.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

from resolve_worker.matching import IdentityRow

Key = tuple[str, str, str]
# streams whose processors emit identities (gong parties come with the calls)
IDENTITY_STREAMS = frozenset({"users", "extensiveCalls", "channels", "owners", "contacts", "companies", "User",
                              "Account", "Contact", "Lead"})


def load_generated(folder: Path) -> tuple[list[IdentityRow], dict[Key, str]]:
    """Identities (latest record per key, as the writer keeps them) and the truth id per key."""
    from ingest_worker.generate import STREAMS
    from ingest_worker.sources import Context, DictDirectory, process

    directory = DictDirectory()
    latest: dict = {}
    for source, streams in STREAMS.items():
        for stream in streams:
            if stream not in IDENTITY_STREAMS:
                continue  # activity streams carry no identities of their own
            path = folder / source / f"{stream}.jsonl"
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as fh:
                records = [m["record"]["data"] for m in map(json.loads, fh) if m.get("type") == "RECORD"]
            outcome = process(source, stream, records, Context(directory))
            for identity in outcome.identities:
                directory.add(identity)
                latest[identity.key] = identity
    rows = [row_from_identity(i) for i in latest.values()]
    truth: dict[Key, str] = {}
    with (folder / "ground_truth.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            t = json.loads(line)
            truth[(t["source"], t["source_type"], t["source_id"])] = t["truth_id"]
    return rows, truth


def row_from_identity(i) -> IdentityRow:  # noqa: ANN001 - ingest_worker.model.Identity
    linked = (i.attributes or {}).get("linked_identity")
    return IdentityRow(
        i.key.source, i.key.source_type, i.key.source_id, i.entity_type, name=i.name,
        emails=list(dict.fromkeys(i.emails)), domains=list(dict.fromkeys(i.domains)),
        company_source_type=i.company_key.source_type if i.company_key else None,
        company_source_id=i.company_key.source_id if i.company_key else None,
        phone=i.phone, title=i.title, company_name=i.company_name, is_internal=i.is_internal,
        linked_key=(linked["source"], linked["source_type"], linked["source_id"]) if linked else None)


def _pairs(sizes: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def pairwise(predicted: dict[Key, str], truth: dict[Key, str], keys: Iterable[Key]) -> dict:
    """Pairwise precision/recall/F1 of a clustering over ``keys`` (those with a truth label)."""
    keys = [k for k in keys if k in truth and k in predicted]
    tp = _pairs(Counter((predicted[k], truth[k]) for k in keys).values())
    pred_pairs = _pairs(Counter(predicted[k] for k in keys).values())
    true_pairs = _pairs(Counter(truth[k] for k in keys).values())
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"identities": len(keys), "true_pairs": true_pairs, "predicted_pairs": pred_pairs,
            "true_positive_pairs": tp, "precision": round(precision, 5), "recall": round(recall, 5),
            "f1": round(f1, 5)}


def evaluate(rows: list[IdentityRow], predicted: dict[Key, str], truth: dict[Key, str]) -> dict:
    out = {}
    for entity_type in ("person", "company"):
        keys = [r.key for r in rows if r.entity_type == entity_type]
        out[entity_type] = pairwise(predicted, truth, keys)
    return out


BUCKETS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0001)


def calibration(pair_log: list, truth: dict[Key, str]) -> list[dict]:
    """Scored pairs by confidence bucket: how many, and how many are truly one entity (precision)."""
    counts = [[0, 0] for _ in BUCKETS[:-1]]
    for a, b, conf in pair_log:
        if a in truth and b in truth:
            i = next(n for n in range(len(BUCKETS) - 1) if BUCKETS[n] <= conf < BUCKETS[n + 1])
            counts[i][0] += 1
            counts[i][1] += truth[a] == truth[b]
    return [{"confidence": f"[{BUCKETS[i]}, {min(BUCKETS[i + 1], 1.0)})", "pairs": n,
             "precision": round(same / n, 4) if n else None} for i, (n, same) in enumerate(counts)]
