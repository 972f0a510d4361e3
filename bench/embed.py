"""Embedding and vector search figures (issue 5, item 6), all in one run:

    .venv/bin/python bench/embed.py [--scale 0] [--vectors 100000] [--queries 200] [--warmup 100]
        [--data-dir DIR] [--shared-buffers 4GB] [--ef-search 100,400]

1. Raw model vs embed phase on the same chunks: the sample (or ``generate --scale N``) is
   processed into chunks; (a) the local embedder embeds their masked texts in batches of
   ``PAYREADY_EMBED_BATCH_SIZE``; (b) ``embed_worker.pipeline.embed_pending`` claims, embeds and
   stores the same chunks (real Postgres reads and writes). Both with the model already loaded.
2. pgvector search at ``--vectors`` chunks: synthetic interactions and chunks whose vectors are
   the real sample embeddings plus noise (so real queries land among them), HNSW (m=16,
   ef_construction=64, cosine) built after the load; p50/p99 of query embedding + filtered
   ``PgVectorStore.search`` (k=10), without filters, by source and by a 90-day window; recall@10
   of HNSW against exact search on the same queries; the hybrid ``search()`` function as well.

Before the timed series, ``--warmup`` other queries warm the server (index pages, model, pool), as
in a serving process. ``--data-dir DIR`` keeps the embedded stack and the loaded vectors, so a 1M
build is paid once and later runs with the same ``--vectors/--centers/--seed`` only query;
``--shared-buffers`` sizes the embedded server's buffer cache (restarting it once).

Starts an embedded Postgres (or uses PAYREADY_DATABASE_URL). Prints figures, ``uptime`` load, and
a one-line JSON summary last.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCES = ("gong", "slack", "hubspot", "salesforce")
KIND = {"gong": "call", "slack": "thread", "hubspot": "note", "salesforce": "note"}
QUESTIONS = (
    "pricing and contract terms", "renewal discount for a multi-year agreement", "security review questionnaire",
    "integration with our ERP", "who is the decision maker", "invoice dispute and late payment",
    "onboarding timeline for new users", "competitor comparison", "budget approval next quarter",
    "reduce seats at renewal", "legal redlines on the MSA", "data residency in the EU",
)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def phase_vs_raw(settings, scale: int, work: Path, rounds_wanted: int) -> tuple[dict, list[str]]:
    import sqlalchemy as sa

    from common import db, pii, runs
    from embed_worker import pipeline
    from ingest_worker import pipeline as ingest
    from ingest_worker.generate import generate

    if scale:
        landing = work / "landing"
        generate(landing, scale=scale)
        from common.settings import _replace
        settings = _replace(settings, landing_dir=landing)
    run = runs.start_run(settings, list(SOURCES), trigger="bench")
    for source in SOURCES:
        ingest.process_source(settings, source, run.run_id)
    runs.finish_run(settings, run.run_id)
    with db.transaction(settings) as conn:
        texts = [r.text for r in conn.execute(sa.text(
            "SELECT text FROM chunks WHERE embedded_hash IS DISTINCT FROM content_hash "
            "ORDER BY interaction_id, ordinal")).all()]
    if not rounds_wanted:
        return {"chunks": len(texts)}, texts
    embedder = pipeline.settings_embedder(settings)
    embedder.embed(texts[:64])  # warm-up: first-run allocations are no one's steady state
    batch = settings.embed_batch_size
    raw_rates, phase_rates, rounds = [], [], []
    # Alternate raw and phase: on a machine shared with other work, load drifts over minutes, and
    # alternating exposes both to the same drift.
    for round_no in range(rounds_wanted):
        if round_no:
            with db.transaction(settings) as conn:  # the same chunks pending again (vectors upserted)
                conn.execute(sa.text("UPDATE chunks SET embedded_hash = NULL"))
        started = time.perf_counter()
        for i in range(0, len(texts), batch):
            embedder.embed([pii.mask(t) for t in texts[i:i + batch]])
        raw_s = time.perf_counter() - started
        raw_rates.append(len(texts) / raw_s)
        print(f"round {round_no + 1} raw model: {len(texts):,} chunks in {raw_s:.1f}s = {raw_rates[-1]:,.1f} "
              f"chunks/s  (load {load()})")
        stats = pipeline.embed_pending(settings)
        assert stats.chunks == len(texts), (stats.chunks, len(texts))
        phase_rates.append(stats.chunks / stats.seconds)
        rounds.append({"raw_s": round(raw_s, 2), "phase_s": round(stats.seconds, 2),
                       "phase_model_s": round(stats.embed_seconds, 2), "phase_claim_mask_s": round(stats.claim_seconds, 2),
                       "phase_store_s": round(stats.store_seconds, 2)})
        print(f"round {round_no + 1} embed phase: {stats.chunks:,} chunks in {stats.seconds:.1f}s = "
              f"{phase_rates[-1]:,.1f} chunks/s (model {stats.embed_seconds:.1f}s, claim+mask "
              f"{stats.claim_seconds:.2f}s, store+commit {stats.store_seconds:.2f}s) = "
              f"{100 * phase_rates[-1] / raw_rates[-1]:.1f}% of this round's raw  (load {load()})")
    raw_rate, phase_rate = max(raw_rates), max(phase_rates)
    print(f"best of {rounds_wanted}: raw {raw_rate:,.1f} chunks/s, phase {phase_rate:,.1f} chunks/s = "
          f"{100 * phase_rate / raw_rate:.1f}%")
    tokens = [len(t.split()) for t in texts]
    out = {"chunks": len(texts), "words_per_chunk_mean": round(statistics.mean(tokens), 1),
           "raw_chunks_per_s": round(raw_rate, 1), "phase_chunks_per_s": round(phase_rate, 1),
           "phase_share_of_raw": round(phase_rate / raw_rate, 3), "batch_size": batch, "rounds": rounds}
    return out, texts


def load_vectors(settings, n: int, centers: np.ndarray, tag: str, rng: np.random.Generator) -> dict:
    import sqlalchemy as sa

    from common import db

    per_interaction = 10
    n_int = (n + per_interaction - 1) // per_interaction
    engine = db.engine_for(settings)
    t = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_chunk_vectors_hnsw")
        conn.execute(sa.text(
            "INSERT INTO interactions (id, source, source_type, source_id, kind, occurred_at, title) "
            "SELECT g, (ARRAY['gong','slack','hubspot','salesforce'])[1 + g % 4], 'bench', 'b' || g, "
            "(ARRAY['call','thread','note','note'])[1 + g % 4], "
            "timestamptz '2025-01-01' + (g % 365) * interval '1 day' + (g % 24) * interval '1 hour', "
            f"'interaction ' || g FROM generate_series(1, {n_int}) AS g"))
        conn.execute(sa.text(
            "INSERT INTO chunks (id, interaction_id, ordinal, text, token_count, content_hash, embedded_hash, "
            "embedding_model) SELECT gen_random_uuid(), 1 + (g - 1) / 10, (g - 1) % 10, "
            "(ARRAY['pricing and renewal terms','security review and compliance','onboarding and training',"
            "'invoice and payment schedule','integration and API access'])[1 + g % 5] || ' passage ' || g, "
            f"20, md5(g::text), md5(g::text), '{tag}' FROM generate_series(1, {n}) AS g"))
    with engine.begin() as conn:
        ids = [str(r[0]) for r in conn.exec_driver_sql("SELECT id FROM chunks ORDER BY interaction_id, ordinal")]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for start in range(0, n, 20_000):
            part = ids[start:start + 20_000]
            pick = rng.integers(0, len(centers), len(part))
            noise = rng.standard_normal((len(part), centers.shape[1])).astype(np.float32)
            vecs = centers[pick] + noise * (0.6 / np.sqrt(centers.shape[1]))
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            buf = io.StringIO()
            for cid, v in zip(part, vecs):
                buf.write(f"{cid}\t[{','.join(f'{x:.6f}' for x in v.tolist())}]\t{tag}\tbench\n")
            buf.seek(0)
            cur.copy_expert("COPY chunk_vectors (chunk_id, embedding, model, content_hash) FROM STDIN", buf)
        raw.commit()
    finally:
        raw.close()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    with engine.begin() as conn:
        # the graph must fit in memory or the build slows down many times (≈ 2.5 KB per vector here)
        conn.exec_driver_sql(f"SET maintenance_work_mem = '{max(1, -(-n * 3 // 1_000_000))}GB'")
        conn.exec_driver_sql("SET max_parallel_maintenance_workers = 1")
        conn.exec_driver_sql(
            "CREATE INDEX ix_chunk_vectors_hnsw ON chunk_vectors USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)")
    build_s = time.perf_counter() - t
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE interactions")
        conn.exec_driver_sql("ANALYZE chunks")
        conn.exec_driver_sql("ANALYZE chunk_vectors")
    print(f"loaded {n:,} chunks with vectors in {load_s:.1f}s; HNSW build {build_s:.1f}s  (load {load()})")
    return {"load_s": round(load_s, 1), "hnsw_build_s": round(build_s, 1)}


def measure_search(settings, queries: list[str], tag: str, ef_values: list[int], hybrid: bool,
                   warmup: list[str] = ()) -> dict:
    import datetime as dt

    import sqlalchemy as sa

    from common import db
    from embed_worker import search as search_mod
    from embed_worker.pipeline import settings_embedder
    from embed_worker.stores import PgVectorStore, SearchFilters, vector_literal

    embedder = settings_embedder(settings)
    store = PgVectorStore()
    engine = db.engine_for(settings)
    since = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    modes = {
        "no filter": SearchFilters(model=tag),
        "source=gong": SearchFilters(sources=("gong",), model=tag),
        "90-day window": SearchFilters(since=since, until=since + dt.timedelta(days=90), model=tag),
    }
    with engine.begin() as conn:
        vec = embedder.embed([queries[0]])[0]
        conn.exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
        plan = conn.execute(sa.text(
            "EXPLAIN SELECT cv.chunk_id FROM chunk_vectors cv JOIN chunks c ON c.id = cv.chunk_id "
            "JOIN interactions i ON i.id = c.interaction_id WHERE NOT i.deleted AND cv.model = :m "
            "ORDER BY cv.embedding <=> CAST(:v AS vector) LIMIT 10"), {"v": vector_literal(vec), "m": tag}).scalars().all()
    uses_hnsw = any("ix_chunk_vectors_hnsw" in line for line in plan)
    print("plan (no filter): " + ("HNSW index scan" if uses_hnsw else "NO INDEX:\n" + "\n".join(plan)))
    out: dict = {"uses_hnsw": uses_hnsw, "queries": len(queries), "warmup_queries": len(warmup)}
    # A serving process is warm: index pages in memory, model and connections ready. The warm-up
    # queries are not among the measured ones, so no measured query finds its own path cached.
    t = time.perf_counter()
    for q in warmup:
        vec = embedder.embed([q])[0]
        with engine.begin() as conn:
            store.search(conn, vec, 10, modes["no filter"])
    if warmup:
        print(f"warm-up: {len(warmup)} other queries in {time.perf_counter() - t:.1f}s")
    approx: dict[str, list[str]] = {}
    for name, filters in modes.items():
        lat = []
        short = 0
        for q in queries:
            t = time.perf_counter()
            vec = embedder.embed([q])[0]
            with engine.begin() as conn:
                hits = store.search(conn, vec, 10, filters)
            lat.append((time.perf_counter() - t) * 1000)
            short += len(hits) < 10
            if name == "no filter":
                approx[q] = [h.chunk_id for h in hits]
        p50, p99 = pct(lat, 50), pct(lat, 99)
        print(f"pgvector search, query embedding included, {name:<14}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
              f"  (fewer than 10 hits: {short})  (load {load()})")
        out[name] = {"p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "short_results": short}
    embed_lat = []
    for q in queries[:100]:
        t = time.perf_counter()
        embedder.embed([q])
        embed_lat.append((time.perf_counter() - t) * 1000)
    out["query_embedding_p50_ms"] = round(pct(embed_lat, 50), 1)
    print(f"query embedding alone: p50 {out['query_embedding_p50_ms']} ms")
    recalls = []
    exact_ids: dict[str, list[str]] = {}
    for q in queries:
        vec = embedder.embed([q])[0]
        with engine.begin() as conn:
            exact = exact_ids[q] = [str(r[0]) for r in conn.execute(sa.text(
                "SELECT chunk_id FROM chunk_vectors ORDER BY (embedding <=> CAST(:v AS vector)) + 0, chunk_id LIMIT 10"),
                {"v": vector_literal(vec)})]
        recalls.append(len(set(exact) & set(approx[q])) / 10)
    out["recall_at_10"] = round(statistics.mean(recalls), 4)
    print(f"recall@10 of HNSW (ef_search {store.ef_search}) against exact search: {out['recall_at_10']:.4f}")
    out["ef_sweep"] = {}
    for ef in ef_values:
        swept = PgVectorStore(ef_search=ef)
        lat, recalls = [], []
        for q in queries:
            t = time.perf_counter()
            vec = embedder.embed([q])[0]
            with engine.begin() as conn:
                got = [h.chunk_id for h in swept.search(conn, vec, 10, modes["no filter"])]
            lat.append((time.perf_counter() - t) * 1000)
            recalls.append(len(set(exact_ids[q]) & set(got)) / 10)
        out["ef_sweep"][ef] = {"p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
                               "recall_at_10": round(statistics.mean(recalls), 4)}
        print(f"ef_search {ef:>4}: recall@10 {statistics.mean(recalls):.4f}, search with query embedding "
              f"p50 {pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms  (load {load()})")
    if not hybrid:
        return out
    lat = []
    for q in queries[:100]:
        t = time.perf_counter()
        search_mod.search(settings, q, k=10)
        lat.append((time.perf_counter() - t) * 1000)
    out["hybrid_search"] = {"p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1), "queries": len(lat)}
    print(f"hybrid search() (vector + keyword + fusion + context): p50 {pct(lat, 50):.1f} ms  "
          f"p99 {pct(lat, 99):.1f} ms over {len(lat)} queries  (load {load()})")
    return out


def drop_schema(settings) -> None:
    from common import db

    with db.transaction(settings) as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')


def show_setting(env: dict, name: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(env["PAYREADY_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql(f"SHOW {name}").scalar())
    finally:
        engine.dispose()


def restart_with_shared_buffers(stack, size: str):
    """shared_buffers only changes at server start: ALTER SYSTEM, then stop and start the stack."""
    import sqlalchemy as sa

    from common import embedded

    env = stack.urls.as_env()
    if show_setting(env, "shared_buffers").lower() == size.lower():
        return stack
    engine = sa.create_engine(env["PAYREADY_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"ALTER SYSTEM SET shared_buffers = '{size}'")
    engine.dispose()
    stack.stop()
    stack = embedded.EmbeddedStack(stack.data_dir)
    stack.start()
    print(f"embedded Postgres restarted with shared_buffers = {show_setting(stack.urls.as_env(), 'shared_buffers')}")
    return stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=0, help="generate landing data at this scale (0: bundled sample)")
    parser.add_argument("--vectors", type=int, default=100_000, help="chunks for the search benchmark (0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="raw/phase rounds, alternated (0: skip)")
    parser.add_argument("--centers", type=int, default=3000, help="sample chunks whose embeddings seed the vectors")
    parser.add_argument("--ef-search", default="", help="also sweep these hnsw.ef_search values, e.g. 40,100,200")
    parser.add_argument("--no-hybrid", action="store_true", help="skip the hybrid search() figures")
    parser.add_argument("--warmup", type=int, default=100,
                        help="untimed queries (not among the measured ones) before the timed series")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the embedded stack and the loaded vectors here; a later run with the same "
                             "--vectors/--centers/--seed reuses them (skips COPY and the HNSW build)")
    parser.add_argument("--shared-buffers", default="",
                        help="set the embedded Postgres' shared_buffers (e.g. 4GB) and restart it first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from common import db, embedded, settings as settings_mod
    from common.cli import migrate
    from embed_worker.pipeline import model_tag, settings_embedder

    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    stack_dir = args.data_dir / "stack" if args.data_dir else work / "stack"
    manifest_path = args.data_dir / "vectors.json" if args.data_dir else None
    wanted = {"vectors": args.vectors, "centers": args.centers, "seed": args.seed}
    manifest = json.loads(manifest_path.read_text()) if manifest_path and manifest_path.exists() else {}
    stack = None
    summary: dict = {"bench": "embed", "load_at_start": load(), "cpus": os.cpu_count()}
    try:
        env = {k: v for k, v in os.environ.items() if k in ("PAYREADY_DATABASE_URL", "PAYREADY_REDIS_URL")}
        if not env.get("PAYREADY_DATABASE_URL"):
            stack = embedded.EmbeddedStack(stack_dir)
            env = stack.start().as_env()
            if args.shared_buffers:
                stack = restart_with_shared_buffers(stack, args.shared_buffers)
            summary["shared_buffers"] = show_setting(env, "shared_buffers")
        domain = f"bench_{uuid.uuid4().hex[:8]}"
        settings = settings_mod.load({**env, "PAYREADY_DOMAIN": domain, "PAYREADY_REDIS_PREFIX": f"{domain}:"})
        settings_mod.override(settings)
        migrate(settings)
        vec_settings = None
        try:
            summary["phase"], texts = phase_vs_raw(settings, args.scale, work, args.rounds)
            if args.vectors:
                embedder = settings_embedder(settings)
                tag = model_tag(embedder)
                centers = embedder.embed(texts[: args.centers])
                reuse = manifest.get("params") == wanted and manifest.get("model") == tag
                vec_domain = manifest["domain"] if reuse else f"benchvec_{uuid.uuid4().hex[:8]}"
                vec_settings = settings_mod.load({**env, "PAYREADY_DOMAIN": vec_domain,
                                                  "PAYREADY_REDIS_PREFIX": f"{vec_domain}:"})
                summary["vectors"] = args.vectors
                if reuse:
                    print(f"reusing {args.vectors:,} loaded vectors in domain {vec_domain} from {manifest_path}")
                    summary["load"] = manifest.get("load")
                else:
                    if manifest_path and manifest.get("domain"):
                        drop_schema(settings_mod.load({**env, "PAYREADY_DOMAIN": manifest["domain"]}))
                    migrate(vec_settings)
                    summary["load"] = load_vectors(vec_settings, args.vectors, centers, tag,
                                                   np.random.default_rng(args.seed))
                    if manifest_path:
                        manifest_path.write_text(json.dumps({"params": wanted, "model": tag, "domain": vec_domain,
                                                             "load": summary["load"]}))
                # Queries from their own generator, so reused vectors see the same queries as fresh ones.
                rng = np.random.default_rng(args.seed + 1)
                extra = args.queries + args.warmup - len(QUESTIONS)
                picks = rng.choice(len(texts), size=max(0, extra), replace=len(texts) < extra)
                sample_queries = [" ".join(texts[i].split()[:12]) for i in picks]
                measured = (list(QUESTIONS) + sample_queries[args.warmup:])[: args.queries]
                summary["search"] = measure_search(vec_settings, measured, tag,
                                                   [int(x) for x in args.ef_search.split(",") if x], not args.no_hybrid,
                                                   warmup=sample_queries[: args.warmup])
        finally:
            for s in (settings, None if args.data_dir else vec_settings):
                if s is not None:
                    drop_schema(s)
            db.dispose_all()
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    summary["load_at_end"] = load()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
