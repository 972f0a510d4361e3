"""Process-phase throughput vs the raw Postgres COPY rate of the same records (issue 3, item 8).

    .venv/bin/python bench/ingest.py [--scale 68] [--batch-size 1000] [--keep DIR]

Generates ~100k records (scale 68 ≈ 99k), starts an embedded Postgres (or uses
PAYREADY_DATABASE_URL), migrates a fresh domain, then in one run measures:

(a) ``ingest_worker.pipeline.process_source`` for the four sources (no Celery), in records/s;
(b) COPY of every landed record's ``data`` as one jsonb column into a temp table, in records/s;

and prints both, their ratio, a per-stage time breakdown, the CPU seconds spent by this process
and by the Postgres server, and a one-line JSON summary last.

``--workers 2`` runs the sources in a pool of 2 processes, each calling the same
``process_source`` (what two ingest worker processes do with the run's four process tasks);
the stage breakdown is then the sum over both processes. ``--profile FILE`` writes a cProfile of
the process phase (single process only).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCES = ("gong", "slack", "hubspot", "salesforce")
RECORDS_PER_UNIT = 1461  # generate(scale=1) writes ~1,461 records


def _timed_reader(read_batches, sink: dict, cpu_sink: dict):
    """Wrap landing.read_batches so time spent reading and parsing JSONL is counted as 'parse'."""
    def wrapper(*args, **kwargs):
        it = read_batches(*args, **kwargs)
        while True:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                sink["parse"] += time.perf_counter() - started
                cpu_sink["parse"] += time.process_time() - cpu
            yield batch
    wrapper.timed = True
    return wrapper


def _proc_ticks(pid: int, children: bool = False) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # utime, stime (fields 14, 15 of stat); cutime, cstime (16, 17): children that exited
    return sum(int(f) for f in fields[11:15 if children else 13])


def _postgres_cpu_seconds(settings) -> float:
    """CPU (user + system) of the bench's own Postgres server so far, from /proc: the live
    processes, plus backends that exited (the postmaster's reaped children)."""
    from common import db
    import sqlalchemy as sa

    with db.engine_for(settings).connect() as conn:
        pids = list(conn.execute(sa.text("SELECT pid FROM pg_stat_activity")).scalars())
    postmaster = 0
    for pid in pids:
        try:
            postmaster = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            break
        except OSError:
            continue
    total = sum(_proc_ticks(pid) for pid in pids) + (_proc_ticks(postmaster, children=True) if postmaster else 0)
    return total / os.sysconf("SC_CLK_TCK")


def _clean_gin_pending(settings) -> float:
    """Merge what GIN indexes still hold in their pending lists (fastupdate), so the Postgres
    CPU counts the index work the run left behind, not only what it did; returns its seconds."""
    from common import db
    import sqlalchemy as sa

    started = time.perf_counter()
    with db.transaction(settings) as conn:
        conn.execute(sa.text(
            "SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE a.amname = 'gin' AND n.nspname = :schema"), {"schema": settings.schema})
    return time.perf_counter() - started


def _wait_for_backends(settings, timeout: float = 10.0) -> None:
    """Until only this process' connection is left: a pool's closed connections end their
    backends asynchronously, and their CPU is read from the postmaster once it reaped them."""
    from common import db
    import sqlalchemy as sa

    deadline = time.monotonic() + timeout
    with db.engine_for(settings).connect() as conn:
        while time.monotonic() < deadline and conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()")).scalar():
            time.sleep(0.05)


def _process_one(settings, source: str, run_id: str) -> dict:
    """One process task's work: ``process_source`` for ``source`` (in a pool worker or inline)."""
    from ingest_worker import landing, pipeline, store

    store.STAGE_SECONDS.clear()
    store.STAGE_CPU_SECONDS.clear()
    if not getattr(landing.read_batches, "timed", False):
        landing.read_batches = _timed_reader(landing.read_batches, store.STAGE_SECONDS, store.STAGE_CPU_SECONDS)
    cpu, t = time.process_time(), time.perf_counter()
    totals = pipeline.process_source(settings, source, run_id)
    return {"records": totals.records_in, "seconds": round(time.perf_counter() - t, 2),
            "cpu_s": time.process_time() - cpu, "dead": totals.dead, "interactions": totals.interactions,
            "chunks_changed": totals.chunks_changed, "stages": dict(store.STAGE_SECONDS),
            "stages_cpu": dict(store.STAGE_CPU_SECONDS)}


def _pool_init(settings) -> None:
    from common import db, settings as settings_mod

    db.dispose_all()  # never share the parent's connections across fork
    settings_mod.override(settings)


def _copy_buffer(landing_dir: Path) -> tuple[io.StringIO, int]:
    """Every RECORD's data, one json text per line, escaped for COPY text format."""
    buf, n = io.StringIO(), 0
    for source in SOURCES:
        for path in sorted((landing_dir / source).glob("*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    msg = json.loads(line)
                    if msg.get("type") != "RECORD":
                        continue
                    text = json.dumps(msg["record"]["data"], ensure_ascii=False, separators=(",", ":"))
                    buf.write(text.replace("\\", "\\\\").replace("\x00", "") + "\n")
                    n += 1
    buf.seek(0)
    return buf, n


def _copy_rate(settings, landing_dir: Path) -> dict:
    from common import db

    started = time.perf_counter()
    buf, n = _copy_buffer(landing_dir)
    prepare = time.perf_counter() - started
    raw = db.engine_for(settings).raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_copy (data jsonb)")  # unlogged, dropped below
        cur.execute("TRUNCATE bench_copy")
        raw.commit()
        started = time.perf_counter()
        cur.copy_expert("COPY bench_copy (data) FROM STDIN", buf)
        raw.commit()
        elapsed = time.perf_counter() - started
        cur.execute("SELECT count(*) FROM bench_copy")
        copied = cur.fetchone()[0]
        cur.execute("DROP TABLE bench_copy")
        raw.commit()
    finally:
        raw.close()
    assert copied == n, (copied, n)
    return {"records": n, "seconds": elapsed, "prepare_s": prepare, "rate": n / elapsed}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=68, help="generator scale (68 ≈ 99k records)")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--keep", type=Path, help="reuse/keep generated data in this folder")
    ap.add_argument("--workers", type=int, default=1, help="processes running process_source (one source each)")
    ap.add_argument("--sources", default=",".join(SOURCES), help="comma list of sources to process")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the process phase here (workers=1)")
    args = ap.parse_args()
    sources = [s for s in args.sources.split(",") if s]

    import logging

    logging.basicConfig(level=logging.WARNING)
    from common import db, embedded, runs, settings as settings_mod
    from common.cli import migrate
    from ingest_worker.generate import generate

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    data_dir = args.keep or work / "landing"
    stack = None
    try:
        if not (data_dir / "ground_truth.jsonl").exists():
            t = time.perf_counter()
            gen = generate(data_dir, scale=args.scale)
            print(f"generated {gen['total_records']:,} records at scale {args.scale} in "
                  f"{time.perf_counter() - t:.1f}s -> {data_dir}")
        env = {k: v for k, v in os.environ.items() if k in ("PAYREADY_DATABASE_URL", "PAYREADY_REDIS_URL")}
        if not env.get("PAYREADY_DATABASE_URL"):
            t = time.perf_counter()
            stack = embedded.EmbeddedStack(work / "stack")
            env = stack.start().as_env()
            print(f"embedded stack up in {time.perf_counter() - t:.1f}s")
        domain = f"bench_{uuid.uuid4().hex[:8]}"
        settings = settings_mod.load({**env, "PAYREADY_DOMAIN": domain, "PAYREADY_REDIS_PREFIX": f"{domain}:",
                                      "PAYREADY_LANDING": "files",
                                      "PAYREADY_BATCH_SIZE": str(args.batch_size)})
        settings = settings_mod._replace(settings, landing_dir=data_dir)
        settings_mod.override(settings)
        migrate(settings)
        try:
            run = runs.start_run(settings, sources, trigger="bench")
            backend_cpu = _postgres_cpu_seconds(settings)
            started, cpu = time.perf_counter(), time.process_time()
            if args.workers > 1:
                import multiprocessing

                db.dispose_all()
                ctx = multiprocessing.get_context("fork")
                with ctx.Pool(args.workers, initializer=_pool_init, initargs=(settings,)) as pool:
                    # the heaviest first, so the pool's two processes finish close together
                    order = sorted(sources, key=lambda s: -sum(p.stat().st_size for p in (data_dir / s).glob("*.jsonl")))
                    results = dict(zip(order, pool.starmap(_process_one, [(settings, s, run.run_id) for s in order])))
                per_source = {s: results[s] for s in sources}
            elif args.profile:
                import cProfile

                profiler = cProfile.Profile()
                per_source = {s: profiler.runcall(_process_one, settings, s, run.run_id) for s in sources}
                profiler.dump_stats(str(args.profile))
            else:
                per_source = {s: _process_one(settings, s, run.run_id) for s in sources}
            elapsed = time.perf_counter() - started
            python_cpu = time.process_time() - cpu if args.workers == 1 else sum(r["cpu_s"] for r in per_source.values())
            if args.workers > 1:
                db.dispose_all()
                _wait_for_backends(settings)
            pending = _clean_gin_pending(settings)
            backend_cpu = _postgres_cpu_seconds(settings) - backend_cpu
            runs.finish_run(settings, run.run_id)
            records = sum(s["records"] for s in per_source.values())
            rate = records / elapsed
            stages: dict[str, float] = {}
            stages_cpu: dict[str, float] = {}
            for result in per_source.values():
                for k, v in result["stages"].items():
                    stages[k] = stages.get(k, 0.0) + v
                for k, v in result["stages_cpu"].items():
                    stages_cpu[k] = stages_cpu.get(k, 0.0) + v
            copy = _copy_rate(settings, data_dir)
        finally:
            with db.transaction(settings) as conn:
                import sqlalchemy as sa

                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE'))
            db.dispose_all()
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(work, ignore_errors=True)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\ncpus: {cpus}   batch size: {args.batch_size}   processes: {args.workers}   load: {_load()}")
    print(f"{'source':<12}{'records':>10}{'seconds':>9}{'rec/s':>9}{'dead':>7}{'interactions':>14}{'chunks':>9}")
    for source, s in per_source.items():
        print(f"{source:<12}{s['records']:>10,}{s['seconds']:>9.1f}{s['records'] / s['seconds']:>9,.0f}"
              f"{s['dead']:>7}{s['interactions']:>14,}{s['chunks_changed']:>9,}")
    print(f"\n(a) process phase: {records:,} records in {elapsed:.1f}s = {rate:,.0f} records/s")
    print(f"(b) raw COPY jsonb: {copy['records']:,} records in {copy['seconds']:.2f}s = {copy['rate']:,.0f} records/s "
          f"(+{copy['prepare_s']:.1f}s to read and serialise, not counted)")
    print(f"ratio COPY / process: {copy['rate'] / rate:.1f}x   (process = {100 * rate / copy['rate']:.1f}% of COPY)")
    cpu_total = python_cpu + backend_cpu
    print(f"CPU: python {python_cpu:.1f}s + postgres server {backend_cpu:.1f}s = {cpu_total:.1f}s "
          f"= {records / cpu_total:,.0f} records per CPU-second (postgres includes merging GIN pending "
          f"lists after the phase: {pending:.2f}s wall)")
    named = ("parse", "process", "write", "rechunk", "commit")
    breakdown = {k: stages.get(k, 0.0) for k in named}
    breakdown.update({k: v for k, v in stages.items() if k not in named})
    wall = elapsed * args.workers  # stages are summed over the pool's processes
    breakdown["other"] = max(0.0, wall - sum(breakdown.values()))
    print("\nstage breakdown (s, share of the process phase" + (", summed over processes" if args.workers > 1 else "") + "):")
    labels = {"parse": "parse (read + orjson JSONL)", "process": "process (pure processors)",
              "write": "write (set-based upserts + dead letters)",
              "rechunk": "rechunk (inserted/changed only: chunk, upsert)", "commit": "commit",
              "lookup": "identity cache (one load per task run)", "other": "other (counts, checkpoint, loop)"}
    print(f"  {'':<50}{'wall s':>7}  {'share':>5}  {'python CPU s':>12}")
    for k, v in breakdown.items():
        cpu_s = f"{stages_cpu[k]:>12.2f}" if k in stages_cpu else ""
        print(f"  {labels.get(k, k):<50}{v:>7.2f}  {100 * v / wall:5.1f}%  {cpu_s}")
    summary = {"records": records, "seconds": round(elapsed, 2), "records_per_s": round(rate),
               "copy_records_per_s": round(copy["rate"]), "copy_over_process": round(copy["rate"] / rate, 1),
               "batch_size": args.batch_size, "cpus": cpus, "scale": args.scale, "processes": args.workers,
               "python_cpu_s": round(python_cpu, 1), "postgres_cpu_s": round(backend_cpu, 1),
               "gin_pending_merge_s": round(pending, 2), "load": _load(),
               "stages_s": {k: round(v, 2) for k, v in breakdown.items()},
               "stages_python_cpu_s": {k: round(v, 2) for k, v in stages_cpu.items()}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
