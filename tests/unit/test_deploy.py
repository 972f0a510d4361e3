"""deploy/ is checked against the code: the processes against the Procfile, the variables against
the settings, the metric names in alerts and the dashboard against the metrics the code
registers, and the alert rules with promtool (check + unit tests)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from honcho.environ import parse_procfile

from common import metrics, settings as settings_mod
from common.celery_app import app
from common.schedule import beat_schedule, entries
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
PROCFILE = parse_procfile((ROOT / "Procfile").read_text()).processes
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
K8S = [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
DEPLOYMENTS = {d["metadata"]["name"]: d for d in K8S if d["kind"] == "Deployment"}
JOBS = {d["metadata"]["name"]: d for d in K8S if d["kind"] == "Job"}
RULES = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "alerts.yml").read_text())
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
VARS = settings_mod._VARS
SECRET_VARS = {name for name, (_, _, secret) in VARS.items() if secret}
OUTSIDE_VARS = {"PROMETHEUS_MULTIPROC_DIR"}  # prometheus_client's own variable


def _compose_env(service: dict) -> dict:
    return service.get("environment") or {}


def _k8s_env(deployment: dict) -> dict:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _check_var(name: str) -> None:
    if name in OUTSIDE_VARS:
        return
    if name.endswith("_FILE"):
        assert name[:-5] in SECRET_VARS, f"{name}: only secrets are read from files"
    else:
        assert name in VARS, f"{name} is not a setting (common/settings.py _VARS)"


def test_every_procfile_process_is_a_compose_service_and_a_k8s_deployment():
    assert set(PROCFILE) == {"web", "ingest", "resolve", "embed", "beat", "flower"}
    for name in PROCFILE:
        assert COMPOSE["services"][name]["command"] == ["proc", name], name
        [container] = DEPLOYMENTS[f"payready-{name}"]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["proc", name], name
    assert DEPLOYMENTS["payready-beat"]["spec"]["replicas"] == 1, "two beats would tick twice"
    assert "entrypoint" not in str(COMPOSE["services"]["web"]), "containers run the Procfile's command"


def test_a_k8s_job_migrates_as_compose_does_with_the_workers_image_config_and_secrets():
    # without it a fresh cluster has no schema and /readyz answers 503
    job = JOBS["payready-migrate"]
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == COMPOSE["services"]["migrate"]["command"] == ["migrate"]
    assert pod["restartPolicy"] in ("Never", "OnFailure") and job["spec"]["backoffLimit"] >= 1
    for name in ("payready-ingest", "payready-web"):
        deployment = DEPLOYMENTS[name]
        [theirs] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == theirs["image"], name
        assert container["envFrom"] == theirs["envFrom"], name
        secret_env = {k: v for k, v in _k8s_env(deployment).items() if k.endswith("_FILE")}
        assert {k: v for k, v in _k8s_env(job).items() if k.endswith("_FILE")} == secret_env, name
        assert {m["mountPath"]: m for m in container["volumeMounts"]}["/run/secrets/payready"] == \
            {m["mountPath"]: m for m in theirs["volumeMounts"]}["/run/secrets/payready"]
        assert {v["name"]: v for v in pod["volumes"]}["secrets"] == \
            {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}["secrets"]
    # migrate refuses to start the embedded stack only when both URLs are given
    assert {"PAYREADY_DATABASE_URL_FILE", "PAYREADY_REDIS_URL_FILE"} <= set(_k8s_env(job))


def test_cli_proc_runs_procfile_entries():
    from common.cli import build_parser

    args = build_parser().parse_args(["proc", "ingest"])
    assert args.name == "ingest" and args.fn.__name__ == "cmd_proc"


def test_variables_in_compose_and_k8s_are_settings_and_secrets_come_from_files():
    ours = {n: svc for n, svc in COMPOSE["services"].items() if svc.get("image") == "payready-etl:latest"}
    assert set(PROCFILE) | {"migrate"} <= set(ours)
    for name, service in ours.items():
        for var, value in _compose_env(service).items():
            _check_var(var)
            assert var not in SECRET_VARS, f"compose {name}: {var} must be given as {var}_FILE"
    for config in (d for d in K8S if d["kind"] == "ConfigMap"):
        for var in config["data"]:
            _check_var(var)
            assert var not in SECRET_VARS, f"ConfigMap: {var} is a secret"
    secret_keys = {k for d in K8S if d["kind"] == "Secret" for k in d["stringData"]}
    for name, deployment in {**DEPLOYMENTS, **JOBS}.items():
        env = _k8s_env(deployment)
        for var, value in env.items():
            _check_var(var)
            assert var not in SECRET_VARS, f"{name}: {var} must be given as {var}_FILE"
            if var.endswith("_FILE"):
                assert value.startswith("/run/secrets/payready/") and value.rsplit("/", 1)[1] in secret_keys
        assert "PAYREADY_DATABASE_URL_FILE" in env and "PAYREADY_BROKER_URL_FILE" in env


def test_flower_binds_loopback_by_default_and_takes_basic_auth():
    assert "--address=${PAYREADY_FLOWER_HOST:-127.0.0.1}" in PROCFILE["flower"]
    assert "--basic-auth=$PAYREADY_FLOWER_BASIC_AUTH" in PROCFILE["flower"]
    assert COMPOSE["services"]["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert "PAYREADY_FLOWER_BASIC_AUTH_FILE" in _compose_env(COMPOSE["services"]["flower"])
    assert "PAYREADY_FLOWER_BASIC_AUTH_FILE" in _k8s_env(DEPLOYMENTS["payready-flower"])


def test_workers_scale_on_their_own_queue_depth():
    s = settings_mod.load({})
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in K8S if d["kind"] == "ScaledObject"}
    for phase in ("ingest", "embed"):
        [trigger] = scaled[f"payready-{phase}"]["spec"]["triggers"]
        assert f'{s.metric_prefix}queue_depth{{queue="{s.queue(phase)}"}}' in trigger["metadata"]["query"]
    assert "payready-resolve" not in scaled, "resolution is one at a time (table lock)"


def test_prometheus_scrapes_the_ports_the_processes_serve():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    served = {"web:8000"} | {f"{name}:{_compose_env(svc)['PAYREADY_METRICS_PORT']}"
                             for name, svc in COMPOSE["services"].items()
                             if "PAYREADY_METRICS_PORT" in _compose_env(svc)}
    assert targets == served


def _registered_metric_names() -> set[str]:
    names = set(metrics.STATE_METRICS)
    for value in vars(metrics).values():
        name = getattr(value, "_name", None)
        if name and hasattr(value, "_type"):
            names.add(name)
    return names


def _metric_names_in(text: str) -> set[str]:
    found = set()
    for name in re.findall(r"\b(pay_ready_[a-z_]+)", text):
        found.add(re.sub(r"_(total|bucket|sum|count)$", "", name))
    return found


def test_alerts_and_dashboard_use_only_metrics_the_code_registers():
    registered = _registered_metric_names()
    exprs = [r["expr"] for g in RULES["groups"] for r in g["rules"]]
    panel_exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    used = _metric_names_in("\n".join(exprs + panel_exprs))
    assert used and used <= registered, used - registered
    for required in ("sync_duration_seconds", "processing_rate", "entity_resolution_accuracy", "cache_hit_ratio",
                     "queue_depth", "dead_letters_waiting", "source_freshness_seconds", "rate_limit_wait_seconds",
                     "task_duration_seconds", "tasks"):
        assert f"pay_ready_{required}" in _metric_names_in("\n".join(panel_exprs)), required


def test_alert_rules_cover_the_failure_modes():
    alerts = {r["alert"] for g in RULES["groups"] for r in g["rules"]}
    assert {"PayReadySyncFailed", "PayReadyProcessingDelayed", "PayReadySourceStale", "PayReadyMemoryPressure",
            "PayReadyTaskErrorRate", "PayReadyApiErrors", "PayReadyDeadLettersGrowing"} <= alerts


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (Debian package prometheus)")
@pytest.mark.parametrize("args", [
    ["check", "rules", "rules/alerts.yml"],
    ["check", "config", "prometheus.yml"],
    ["test", "rules", "tests/alerts_test.yml"],
])
def test_promtool(args):
    done = subprocess.run(["promtool", *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_beat_schedule_is_data_with_a_reason_per_entry():
    import embed_worker.tasks  # noqa: F401 - registers the tasks beat names
    import ingest_worker.tasks  # noqa: F401
    import resolve_worker.tasks  # noqa: F401

    s = settings_mod.load({"PAYREADY_SYNC_INTERVALS": "slack=60"})
    listed = entries(s)
    assert all(e.why and e.task in app.tasks for e in listed)
    sync = {e.kwargs["sources"][0]: e.every.total_seconds() for e in listed if e.name.startswith("sync-")}
    assert set(sync) == set(s.sources) and sync["slack"] == 60 and sync["gong"] == 3600
    names = set(beat_schedule(s))
    assert {"recover-stale-runs", "redrive-dead-letters", "warm-caches", "prune-retention"} <= names
    with pytest.raises(settings_mod.ConfigError, match="PAYREADY_SYNC_INTERVALS"):
        settings_mod.load({"PAYREADY_SYNC_INTERVALS": "teams=60"})
