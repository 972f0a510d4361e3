"""Entity-resolution accuracy and speed on `payready generate` data, beside Splink in the same run.

    .venv/bin/python bench/resolve.py --scale 20 --scale 200 [--seed 11] [--no-splink] [--store]

For each scale: generate the landing files and ground truth, build the identities with the real
source processors (no database), then time, on the same identity table:
* ours: ``resolve_worker.matching.resolve`` (normalise, block, score, cluster) for persons and companies;
* Splink (duckdb backend): u by random sampling and m by expectation maximisation (training, timed
  apart), then predict + cluster at the same threshold (0.9).
Pairwise precision / recall / F1 against the ground truth per entity type, wall seconds and
identities/s. ``--store`` saves our latest figures in analytics_cache (``entity_resolution_evaluation``)
so ``pay_ready_entity_resolution_accuracy`` exports them. Splink: ``pip install -r bench/requirements.txt``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest_worker.generate import generate  # noqa: E402
from resolve_worker import evaluation, matching, records, scoring  # noqa: E402
from resolve_worker import normalise as nz  # noqa: E402

THRESHOLD = scoring.THRESHOLD
# the generator writes North American numbers; both contenders read phones with the same normaliser
PHONE_REGION = "US"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# reference tables, loaded once per process like a library import: not part of either contender's run
_TABLES = {"_nicknamer", "_extra_nicknames"}


def cold() -> None:
    """Empty every memo of the normalisers and scorers, so each contender starts cold (the
    nickname tables and the phone library stay loaded: both would load them once per process)."""
    nz._nicknamer()
    nz._extra_nicknames()
    nz.parse_phone("+1 415 555 0101", PHONE_REGION)  # imports phonenumbers (55 ms) and the region's data
    for module in (nz, scoring, matching, records):
        for name, value in vars(module).items():
            if hasattr(value, "cache_clear") and name not in _TABLES:
                value.cache_clear()
    gc.collect()


def ours(rows, truth) -> dict:
    cold()
    started, cpu = time.perf_counter(), time.process_time()
    mappings = matching.resolve(rows, phone_region=PHONE_REGION)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    predicted = {m.key: m.entity_id for m in mappings}
    pair_log: list = []
    matching.resolve(rows, pair_log=pair_log, phone_region=PHONE_REGION)  # again, untimed, for the calibration table
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "identities_per_s": round(len(rows) / seconds), "identities_per_cpu_s": round(len(rows) / cpu),
            **evaluation.evaluate(rows, predicted, truth), "load": load(),
            "calibration": evaluation.calibration(pair_log, truth)}


def _splink_frames(rows):
    import pandas as pd

    people, companies = [], []
    for n, r in enumerate(rows):
        if r.entity_type == "person":
            name = nz.parse_person_name(r.name)
            emails = [e for e in (nz.normalise_email(x) for x in r.emails) if e and not nz.is_shared_inbox(e)]
            work = [nz.email_domain(e) for e in emails if not nz.is_webmail(nz.email_domain(e))]
            people.append({"unique_id": n, "first_name": name.first if name else None,
                           "surname": name.last or None if name else None,
                           "email": emails[0] if emails else None, "email2": emails[1] if len(emails) > 1 else None,
                           "phone": nz.normalise_phone(r.phone, PHONE_REGION), "company": work[0] if work else
                           nz.normalise_company_name(r.company_name), "title": nz.normalise_title(r.title)})
        else:
            domains = nz.company_domains(r.domains)
            companies.append({"unique_id": n, "name": nz.normalise_company_name(r.name),
                              "domain": domains[0] if domains else None})
    return pd.DataFrame(people), pd.DataFrame(companies)


def splink_peer(rows, truth) -> dict:
    try:
        import splink.comparison_library as cl
        from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    except ImportError:
        return {"skipped": "Splink not installed: .venv/bin/pip install -r bench/requirements.txt"}
    cold()
    started, cpu = time.perf_counter(), time.process_time()
    gc.disable()  # as ours does during a run: the same Python allocation pattern, the same pause
    try:
        people, companies = _splink_frames(rows)
    finally:
        gc.enable()
    prep_s, prep_cpu = time.perf_counter() - started, time.process_time() - cpu
    specs = {
        "person": (people, [cl.NameComparison("first_name"), cl.NameComparison("surname"),
                            cl.EmailComparison("email"), cl.ExactMatch("email2"), cl.ExactMatch("phone"),
                            cl.ExactMatch("company"), cl.ExactMatch("title")],
                   [block_on("email"), block_on("email2"), block_on("phone"), block_on("surname", "company"),
                    block_on("first_name", "surname")],
                   [block_on("email"), block_on("surname", "company")]),
        "company": (companies, [cl.JaroWinklerAtThresholds("name"), cl.ExactMatch("domain")],
                    [block_on("domain"), block_on("name")], [block_on("domain"), block_on("name")]),
    }
    predicted, train_s, run_s, run_cpu = {}, 0.0, 0.0, 0.0
    for entity_type, (frame, comparisons, predict_rules, em_rules) in specs.items():
        db_api = DuckDBAPI()
        settings = SettingsCreator(link_type="dedupe_only", comparisons=comparisons,
                                   blocking_rules_to_generate_predictions=predict_rules)
        linker = Linker(db_api.register(frame), settings, log_level=None)
        started = time.perf_counter()
        linker.training.estimate_probability_two_random_records_match(em_rules[:1], recall=0.9)
        linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
        for rule in em_rules:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        train_s += time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        pairs = linker.inference.predict(threshold_match_probability=THRESHOLD)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, THRESHOLD)
        result = clusters.as_pandas_dataframe()
        run_s += time.perf_counter() - started
        run_cpu += time.process_time() - cpu
        for uid, cid in zip(result["unique_id"], result["cluster_id"]):
            predicted[rows[int(uid)].key] = f"{entity_type}:{cid}"
    return {"seconds": round(run_s, 2), "cpu_seconds": round(run_cpu, 2), "training_seconds": round(train_s, 2),
            "prep_seconds": round(prep_s, 2), "prep_cpu_seconds": round(prep_cpu, 2),
            "identities_per_s": round(len(rows) / run_s), "identities_per_cpu_s": round(len(rows) / run_cpu), **evaluation.evaluate(rows, predicted, truth),
            "load": load()}


def run_scale(scale: int, seed: int, with_splink: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="payready-bench-") as tmp:
        generate(Path(tmp), scale, seed)
        rows, truth = evaluation.load_generated(Path(tmp))
    out = {"scale": scale, "seed": seed, "identities": len(rows), "ours": ours(rows, truth)}
    print(json.dumps(out["ours"] | {"who": "ours", "identities": len(rows)}), flush=True)
    if with_splink:
        out["splink"] = splink_peer(rows, truth)
        print(json.dumps(out["splink"] | {"who": "splink", "identities": len(rows)}), flush=True)
    return out


def store(result: dict) -> None:
    from resolve_worker import accuracy
    from common import settings as settings_mod

    accuracy.record(settings_mod.get(), result)


def _brief(figures: dict) -> dict:
    if "person" not in figures:
        return figures
    return {f"{t}_{m}": figures[t][m] for t in ("person", "company") for m in ("precision", "recall", "f1")} | \
        {k: figures[k] for k in ("seconds", "cpu_seconds", "prep_seconds", "training_seconds", "load") if k in figures}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, action="append", help="generator scale (repeatable); 20 ~ 10k identities")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--no-splink", action="store_true")
    p.add_argument("--store", action="store_true", help="save our figures for the accuracy metric")
    args = p.parse_args()
    results = [run_scale(s, args.seed, not args.no_splink) for s in (args.scale or [20])]
    if args.store:
        store(results[-1])
    summary = [{"identities": r["identities"]} | {who: _brief(r[who]) for who in ("ours", "splink") if who in r}
               for r in results]
    print(json.dumps({"bench": "resolve", "results": results, "summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
