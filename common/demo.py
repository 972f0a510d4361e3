"""The main job: migrate, start real worker processes, one full sync of the sample, a summary."""
from __future__ import annotations

import time
from typing import Callable

import sqlalchemy as sa

from common import db, procs, runs
from common.settings import Settings

PHASES = ("ingest", "resolve", "embed")


def run(settings: Settings, progress: Callable[[str], None] = lambda m: None) -> dict:
    from common.celery_app import app
    from common.cli import _process_env, migrate

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    revision = migrate(settings)
    timings["migrate"] = time.perf_counter() - t0
    progress(f"schema {settings.schema} at revision {revision}")
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = _process_env(settings)
    workers = [procs.start(procs.worker_command(settings, phase), env, log_dir / f"{phase}.log") for phase in PHASES]
    try:
        t0 = time.perf_counter()
        procs.wait_for_workers(app, [settings.queue(p) for p in PHASES], timeout=90)
        timings["workers_ready"] = time.perf_counter() - t0
        progress(f"workers up: {', '.join(PHASES)} (logs in {log_dir})")
        t0 = time.perf_counter()
        started = runs.start_run(settings, list(settings.sources), trigger="demo", full_refresh=True)
        if started.created:
            runs.dispatch(settings, started.run_id, list(settings.sources))
        last = {"line": ""}

        def show(r: dict) -> None:
            line = f"run {r.get('status')}: " + ", ".join(
                f"{k} {v['processed'] + v['dead_lettered']}/{v['in']}" for k, v in r.get("sources", {}).items()) \
                + f" | phases done: {len(r.get('phases', {}))}"
            if line != last["line"]:
                progress(line)
                last["line"] = line

        result = runs.wait_for(settings, started.run_id, timeout=900, progress=show)
        timings["sync"] = time.perf_counter() - t0
    finally:
        for proc in workers:
            procs.stop(proc)
    return summarise(settings, result, timings)


def summarise(settings: Settings, run: dict, timings: dict) -> dict:
    from api import nlquery, services

    with db.transaction(settings) as conn:
        counts = dict(conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM interactions) AS interactions, "
            "(SELECT count(*) FROM persons) AS persons, (SELECT count(*) FROM companies) AS companies, "
            "(SELECT count(*) FROM entity_mappings) AS mappings, (SELECT count(*) FROM chunks) AS chunks, "
            "(SELECT count(*) FROM chunks WHERE embedded_hash = content_hash) AS chunks_embedded, "
            "(SELECT count(*) FROM dead_letters) AS dead_letters")).mappings().one())
        top = conn.execute(sa.text(
            "SELECT c.id::text AS id, c.name, count(DISTINCT ie.interaction_id) AS n "
            "FROM companies c JOIN interaction_entities ie ON ie.entity_id = c.id "
            "JOIN entity_mappings em ON em.entity_id = c.id "
            "GROUP BY c.id, c.name ORDER BY count(DISTINCT em.source) DESC, n DESC LIMIT 1")).mappings().first()
        unified = _unified_examples(conn)
    sample_timeline = services.timeline(settings, top["id"], limit=5) if top else None
    try:
        answer = services.search(settings, "pricing and contract terms", k=3)
    except Exception as exc:  # no vector store: say so rather than fail the demo
        answer = [{"error": str(exc)}]
    question = "What did customers say about pricing on gong calls?"
    try:  # the natural-language query of POST /api/v1/query: filters read from the question, cited
        asked = nlquery.answer(settings, question, limit=3, use_cache=False)
    except Exception as exc:  # noqa: BLE001 - the demo reports what could not be answered
        asked = {"question": question, "error": str(exc)}
    phase_seconds = {name: p.get("seconds") for name, p in (run.get("phases") or {}).items() if "seconds" in p}
    return {"run": run, "counts": counts, "timings": {k: round(v, 2) for k, v in timings.items()},
            "phase_seconds": phase_seconds, "sample_timeline": sample_timeline, "unified": unified,
            "sample_answer": {"question": "pricing and contract terms", "passages": answer},
            "sample_question": asked}


def _unified_examples(conn: sa.engine.Connection) -> list[dict]:
    """The person and the company seen in the most sources, with how each identity was linked."""
    out = []
    for entity_type in ("person", "company"):
        head = conn.execute(sa.text(
            "SELECT entity_id FROM entity_mappings WHERE entity_type = :t GROUP BY entity_id "
            "ORDER BY count(DISTINCT source) DESC, count(*) ASC, entity_id LIMIT 1"), {"t": entity_type}).scalar()
        if head is None:
            continue
        rows = conn.execute(sa.text(
            "SELECT em.source, em.source_type, em.method, em.confidence, si.name FROM entity_mappings em "
            "JOIN source_identities si USING (source, source_type, source_id) WHERE em.entity_id = :e "
            "ORDER BY em.source, em.source_type LIMIT 12"), {"e": head}).mappings().all()
        out.append({"type": entity_type, "entity_id": str(head), "identities": [dict(r) for r in rows]})
    return out


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def render(summary: dict) -> str:
    run, counts = summary["run"], summary["counts"]
    lines = [f"\nRun {run.get('run_id')}: {run.get('status')}", "",
             f"{'source':<12}{'in':>8}{'processed':>11}{'dead':>7}"]
    for source, v in run.get("sources", {}).items():
        lines.append(f"{source:<12}{v['in']:>8}{v['processed']:>11}{v['dead_lettered']:>7}")
    lines += ["", "interactions {interactions}, persons {persons}, companies {companies}, identities mapped "
              "{mappings}, chunks {chunks}, embedded {chunks_embedded}, dead letters {dead_letters}".format(**counts),
              "timings (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings"].items())
              + (f", total {summary['wall_seconds']}" if "wall_seconds" in summary else ""),
              "phases (s): " + ", ".join(f"{k} {v}" for k, v in sorted(summary["phase_seconds"].items()))]
    for example in summary.get("unified") or []:
        lines += ["", f"One {example['type']} across sources ({example['entity_id']}):"]
        for i in example["identities"]:
            lines.append(f"  {i['source']:<10} {i['source_type']:<10} {_one_line(i['name'])[:32]:<32} "
                         f"{i['method']} {i['confidence']:.3f}")
    tl = summary.get("sample_timeline")
    if tl:
        lines += ["", f"Timeline of {tl['entity']['name']} ({tl['entity']['type']}), newest first:"]
        for item in tl["items"]:
            lines.append(f"  {item['occurred_at'][:16]}  {item['source']:<10} {item['kind']:<8} "
                         f"{_one_line(item['title'] or item['snippet'])[:70]}")
    ans = summary.get("sample_answer")
    if ans:
        # best first by the fused rank (meaning and keywords), which is what orders the hits; the
        # cosine similarity alone need not descend, so it is shown beside it, labelled
        lines += ["", f"Search: {ans['question']!r} (best first by fused rank; similarity = cosine to the query)"]
        for n, p in enumerate(ans["passages"], start=1):
            if "error" in p:
                lines.append(f"  (unavailable: {p['error']})")
                continue
            lines.append(f"  {n}. rank {p['rank_score']:.4f} similarity {p['score']:.2f} "
                         f"({'+'.join(p['matched_by'])}) {p['source']}/{p['source_type']}/{p['source_id']} "
                         f"{(p['occurred_at'] or '')[:10]}: {p['text'][:100]!r}")
            who = [e["name"] for e in (p.get("persons") or []) + (p.get("companies") or []) if e.get("name")]
            if who:
                lines.append(f"     with {', '.join(who[:6])}" + (" ..." if len(who) > 6 else ""))
    asked = summary.get("sample_question")
    if asked:
        lines += ["", f"Question: {asked['question']!r} ({asked.get('mode', 'unanswered')})"]
        if "error" in asked:
            lines.append(f"  (unavailable: {asked['error']})")
        else:
            lines += [f"  {line[:160]}" for line in asked["answer"].splitlines()]
            lines += [f"  [{c['n']}] interaction {c['interaction_id']} {c['source']}/{c['source_type']}/"
                      f"{c['source_id']} {(c['occurred_at'] or '')[:10]} {c['url'] or ''}".rstrip()
                      for c in asked["citations"]]
    return "\n".join(lines)
