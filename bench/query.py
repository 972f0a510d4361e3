"""Latency of the issue-6 read services on the bundled sample (issue 6, i6b).

    .venv/bin/python bench/query.py [--repeats 3]

Starts an embedded Postgres + Redis in a temporary folder (or uses PAYREADY_DATABASE_URL and
PAYREADY_REDIS_URL), migrates a fresh domain, lands the bundled sample through the pipeline
(process, resolve, embed; no Celery), then times in-process:

(a) ``api.nlquery.answer`` uncached (extractive: parse, semantic search, filters, answer);
(b) the same questions answered from the Redis cache;
(c) ``api.coaching_report.report`` for every rep over the whole sample.

Prints medians and p95 with the machine's load average beside them, then a one-line JSON summary.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCES = ["gong", "slack", "hubspot", "salesforce"]
QUESTIONS = [
    "What did Globex say about integration in June 2025?",
    "pricing concerns on gong calls",
    "virtual card rebates",
    "what did Umbrella say about pricing last month?",
    "security review questions since July 2025",
    "hubspot notes about next steps in Q3 2025",
    "who asked about SSO?",
    "competitors mentioned on calls",
]
NOW = dt.datetime(2025, 7, 28, 12, tzinfo=dt.timezone.utc)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from api import coaching_report, nlquery
    from common import embedded, runs, settings as settings_mod
    from common.cli import migrate
    from embed_worker import pipeline as embed
    from ingest_worker import pipeline as ingest
    from resolve_worker import entities

    stack = None
    env = dict(os.environ)
    if not (env.get("PAYREADY_DATABASE_URL") and env.get("PAYREADY_REDIS_URL")):
        stack = embedded.EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-query-")))
        env.update(stack.start().as_env())
    env["PAYREADY_DOMAIN"] = f"bench_{uuid.uuid4().hex[:8]}"
    env["PAYREADY_REDIS_PREFIX"] = env["PAYREADY_DOMAIN"] + ":"  # bench_<hex> would share 16 prefixes
    settings = settings_mod.load(env)
    settings_mod.override(settings)
    try:
        migrate(settings)
        started = time.perf_counter()
        run = runs.start_run(settings, SOURCES, trigger="bench")
        for source in SOURCES:
            ingest.process_source(settings, source, run.run_id)
        entities.resolve_all(settings)
        embed.embed_pending(settings)
        runs.finish_run(settings, run.run_id)
        print(f"sample landed and embedded in {time.perf_counter() - started:.1f} s (load {load()})")

        nlquery.answer(settings, "warm up the embedder", 5, now=NOW, use_cache=False)
        uncached, cached, reports = [], [], []
        for _ in range(args.repeats):
            for q in QUESTIONS:
                t = time.perf_counter()
                nlquery.answer(settings, q, 10, now=NOW, use_cache=False)
                uncached.append((time.perf_counter() - t) * 1000)
        print(f"query uncached: median {statistics.median(uncached):.0f} ms, p95 {pct(uncached, .95):.0f} ms "
              f"over {len(uncached)} questions (load {load()})")
        for q in QUESTIONS:
            nlquery.answer(settings, q, 10, now=NOW)  # fill the cache
        for _ in range(args.repeats):
            for q in QUESTIONS:
                t = time.perf_counter()
                got = nlquery.answer(settings, q, 10, now=NOW)
                cached.append((time.perf_counter() - t) * 1000)
                assert got["cached"]
        print(f"query cached:   median {statistics.median(cached):.1f} ms, p95 {pct(cached, .95):.1f} ms "
              f"(load {load()})")
        for _ in range(args.repeats):
            t = time.perf_counter()
            body = coaching_report.report(settings)
            reports.append((time.perf_counter() - t) * 1000)
        calls = sum(len(r["calls"]) for r in body["reps"])
        print(f"coaching report (all {len(body['reps'])} reps, {calls} rep-call rows): median "
              f"{statistics.median(reports):.0f} ms (load {load()})")
        print(json.dumps({"bench": "query", "uncached_median_ms": round(statistics.median(uncached)),
                          "uncached_p95_ms": round(pct(uncached, .95)),
                          "cached_median_ms": round(statistics.median(cached), 1),
                          "coaching_report_median_ms": round(statistics.median(reports)),
                          "reps": len(body["reps"]), "rep_call_rows": calls, "load": load()}))
    finally:
        if stack is not None:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
