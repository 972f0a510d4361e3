"""The resolve phase end to end against Postgres: what a sync pays for resolution, per step.

    .venv/bin/python bench/resolve_task.py [--scale 200] [--new-share 0.01] [--keep DIR]

``bench/resolve.py`` times the matching alone, in memory. This times ``entities.resolve_all``
(the resolve task's body: load identities, match, write mappings and entities, link interactions,
invalidate caches) on identities the real ingest wrote: ``payready generate`` data (scale 200 ≈
100k identities) processed by ``pipeline.process_source`` into a fresh domain of an embedded
Postgres and Redis (or ``PAYREADY_DATABASE_URL`` / ``PAYREADY_REDIS_URL``). ``--new-share`` of the
identities (chosen by a hash of their key) are held back before the first run and added before
the third, so the runs are the ones a deployment sees:

1. **first**: every identity new (a new deployment's first sync);
2. **no new identity**: a sync whose sources brought interactions (``--new-share`` of them, queued
   for linking as the ingest writer queues what it writes) but no new or changed identity: the
   run finds nothing to resolve and only links those;
3. **+new**: the held-back identities arrive (a routine sync);
4. **full**: ``payready entities resolve --full``, everything re-clustered.

Prints wall seconds per step (the stats' ``phases``), identities, changed mappings and links per
run, and one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOURCES = ("gong", "slack", "hubspot", "salesforce")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def ingest(settings) -> float:
    """Every source's landed records through the real processors; seconds."""
    from common import runs
    from ingest_worker import pipeline

    started = time.perf_counter()
    run = runs.start_run(settings, list(SOURCES), trigger="bench")
    for source in SOURCES:
        pipeline.process_source(settings, source, run.run_id)
    runs.finish_run(settings, run.run_id)
    return time.perf_counter() - started


def hold_back(settings, share: float) -> int:
    """Move ``share`` of the person and company identities aside (by a hash of their key); count."""
    import sqlalchemy as sa

    from common import db

    buckets = max(1, round(1 / share)) if share > 0 else 0
    with db.transaction(settings) as conn:
        conn.execute(sa.text("CREATE TABLE held_identities (LIKE source_identities INCLUDING ALL)"))
        if not buckets:
            return 0
        return conn.execute(sa.text(
            "WITH moved AS (DELETE FROM source_identities WHERE entity_type IN ('person', 'company') "
            "AND abs(hashtext(source || '/' || source_type || '/' || source_id)) % :b = 0 RETURNING *) "
            "INSERT INTO held_identities SELECT * FROM moved"), {"b": buckets}).rowcount


def bring_back(settings) -> None:
    import sqlalchemy as sa

    from common import db

    with db.transaction(settings) as conn:
        conn.execute(sa.text("INSERT INTO source_identities SELECT * FROM held_identities"))
        conn.execute(sa.text("DROP TABLE held_identities"))


def queue_interactions(settings, share: float) -> int:
    """Queue ``share`` of the interactions for linking, as a sync that re-delivered them would."""
    import sqlalchemy as sa

    from common import db

    buckets = max(1, round(1 / share)) if share > 0 else 0
    if not buckets:
        return 0
    with db.transaction(settings) as conn:
        return conn.execute(sa.text("INSERT INTO interactions_to_link (interaction_id) SELECT id FROM interactions "
                                    "WHERE id % :b = 0 ON CONFLICT DO NOTHING"), {"b": buckets}).rowcount


def timed_run(settings, label: str, full: bool = False) -> dict:
    from resolve_worker import entities

    cpu = time.process_time()
    stats = entities.resolve_all(settings, full=full)
    out = {"run": label, "seconds": stats.seconds, "python_cpu_seconds": round(time.process_time() - cpu, 2),
           "identities": stats.identities, "changed": stats.changed, "links": stats.links,
           "timelines_invalidated": stats.timelines_invalidated,
           "phases": getattr(stats, "phases", {}), "load": load()}  # code before the step timings has none
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=200, help="generator scale (200 ≈ 100k identities)")
    ap.add_argument("--new-share", type=float, default=0.01, help="share of identities arriving in run 3")
    ap.add_argument("--keep", type=Path, help="reuse/keep the generated data in this folder")
    ap.add_argument("--keep-domain", action="store_true", help="leave the domain's schema (to inspect); printed")
    args = ap.parse_args()
    if not 0 <= args.new_share < 1:
        ap.error("--new-share must be in [0, 1)")
    logging.basicConfig(level=logging.WARNING)

    import sqlalchemy as sa

    from common import db, embedded, settings as settings_mod
    from common.cli import migrate
    from ingest_worker.generate import generate

    work = Path(tempfile.mkdtemp(prefix="bench-resolve-task-"))
    data_dir = args.keep or work / "landing"
    stack = None
    try:
        if not (data_dir / "ground_truth.jsonl").exists():
            generate(data_dir, scale=args.scale)
        env = {k: v for k, v in os.environ.items() if k in ("PAYREADY_DATABASE_URL", "PAYREADY_REDIS_URL")}
        if len(env) < 2:
            stack = embedded.EmbeddedStack(work / "stack")
            env = stack.start().as_env()
        domain = f"bench_{uuid.uuid4().hex[:8]}"  # its own Redis prefix: bench_<hex> would share 16
        settings = settings_mod.load({**env, "PAYREADY_DOMAIN": domain, "PAYREADY_REDIS_PREFIX": f"{domain}:",
                                      "PAYREADY_LANDING": "files"})
        settings = settings_mod._replace(settings, landing_dir=data_dir)
        settings_mod.override(settings)
        migrate(settings)
        try:
            ingest_s = ingest(settings)
            held = hold_back(settings, args.new_share)
            print(f"ingested in {ingest_s:.1f} s; {held:,} identities held back for run 3", flush=True)
            runs = [timed_run(settings, "first")]
            queued = queue_interactions(settings, args.new_share)
            runs.append(timed_run(settings, f"{queued:,} to link"))
            bring_back(settings)
            runs += [timed_run(settings, f"+{held:,} new"), timed_run(settings, "full", full=True)]
        finally:
            if args.keep_domain:
                print(f"kept domain {settings.domain} (schema {settings.schema})")
            else:
                with db.transaction(settings) as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE'))
            db.dispose_all()
            if not args.keep_domain:
                import redis

                client = redis.Redis.from_url(settings.redis_url)
                for key in client.scan_iter(f"{settings.key_prefix}*", count=5000):
                    client.delete(key)
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(work, ignore_errors=True)

    steps = list(dict.fromkeys(s for r in runs for s in r["phases"])) or ["(no step timings)"]
    print(f"\n{'run':<14}{'identities':>11}{'changed':>9}{'wall s':>8}" + "".join(f"{s:>10}" for s in steps))
    for r in runs:
        print(f"{r['run']:<14}{r['identities']:>11,}{r['changed']:>9,}{r['seconds']:>8.2f}"
              + "".join(f"{r['phases'].get(s, 0):>10.2f}" for s in steps))
    print(json.dumps({"bench": "resolve_task", "scale": args.scale, "new_share": args.new_share, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
