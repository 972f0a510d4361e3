"""The `payready` command: up, demo, sync, migrate, generate, status, keys, mcp.

Configuration errors end the command with exit 2 and a message naming the variable.
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

from common import embedded, settings as settings_mod
from common.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
KEY_NAME_MAX = 128  # api_keys.name


def _key_name(raw: str) -> str:
    """A key's name is its actor in the audit log ("key:<name>"): printable, 1-128 characters."""
    name = raw.strip()
    if not name or len(name) > KEY_NAME_MAX or not name.isprintable():
        raise argparse.ArgumentTypeError(f"a key name is 1-{KEY_NAME_MAX} printable characters, got {raw[:40]!r}")
    return name


def _at_least(minimum: float, kind: type = int):  # noqa: ANN202
    def parse(raw: str):  # noqa: ANN202
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {raw}")
        return value
    return parse


def _port(raw: str) -> int:
    value = _at_least(1)(raw)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {raw}")
    return value


def _settings(env_overrides: Optional[dict] = None) -> Settings:
    env = {**os.environ, **(env_overrides or {})}
    s = embedded.resolve_urls(settings_mod.load(env))
    from common import prefix

    prefix.claim(s)  # a Redis prefix held by another domain: exit 2 naming PAYREADY_REDIS_PREFIX
    settings_mod.override(s)
    return s


def migrate(settings: Settings) -> str:
    """Bring the domain schema to the newest revision; returns it."""
    from alembic import command
    from alembic.config import Config

    from common import db

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.attributes["settings"] = settings
    command.upgrade(cfg, "head")
    from common import rls

    with db.transaction(settings) as conn:
        rls.protect_schema(conn, settings.schema)  # tables added after migration 0007 too
        return db.current_revision(conn) or ""


def _has_database(settings: Settings) -> bool:
    if settings.database_url is None:
        print("no database: start the stack with `payready up` or set PAYREADY_DATABASE_URL", file=sys.stderr)
        return False
    return True


def _configure_celery(settings: Settings) -> None:
    from common.celery_app import app, configure

    configure(app, settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    s = _settings()
    with _stack_if_needed(s) as s:
        print(f"schema {s.schema} at revision {migrate(s)}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ingest_worker.generate import generate

    counts = generate(Path(args.out), scale=args.scale, seed=args.seed,
                      progress=lambda done, total: print(f"generated unit {done}/{total}", file=sys.stderr))
    print(json.dumps(counts, indent=2, default=str))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from common import audit, runs

    s = _settings()
    if not _has_database(s):
        return 2
    _configure_celery(s)
    sources = args.source or list(s.sources)
    started = runs.start_run(s, sources, trigger="cli", full_refresh=args.full_refresh)
    if started.created:
        runs.dispatch(s, started.run_id, sources)
    audit.write(s, f"cli:{getpass.getuser()}", "sync.trigger", f"run_id={started.run_id}",
                "created" if started.created else "joined", {"sources": sources})
    if not args.wait:
        print(json.dumps({"run_id": started.run_id, "created": started.created}) if args.json else started.run_id)
        return 0
    run = runs.wait_for(s, started.run_id, timeout=args.timeout,
                        progress=None if args.json else _progress_printer())
    if args.json:
        print(json.dumps(run, indent=2, default=str))
    else:
        print(f"\nrun {run.get('run_id')} {run.get('status')}")
    return 0 if run.get("status") == "succeeded" else 1


def _progress_printer():
    last = {"line": ""}

    def show(run: dict) -> None:
        src = run.get("sources", {})
        line = "  ".join(f"{k}: {v['processed']}+{v['dead_lettered']}/{v['in']} {v['status']}" for k, v in src.items())
        line = f"[{run.get('status')}] {line} | phases: {', '.join(sorted(run.get('phases', {})))}"
        if line != last["line"]:
            print(line, file=sys.stderr)
            last["line"] = line

    return show


def cmd_status(args: argparse.Namespace) -> int:
    from common import status

    s = _settings()
    report = status.collect(s)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for key, value in report.items():
            print(f"{key:>12}: {value}")
    return 0 if report.get("database", {}).get("ok") else 1


def cmd_keys(args: argparse.Namespace) -> int:
    from api import auth

    s = _settings()
    if not _has_database(s):
        return 2
    if args.keys_command == "list":
        keys = auth.list_keys(s)
        if args.json:
            print(json.dumps(keys, indent=2))
        for k in [] if args.json else keys:
            state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
            print(f"{k['name']:<24} created {k['created_at']}  last used {k['last_used_at'] or 'never'}  {state}")
        return 0
    if args.keys_command == "revoke":
        revoked = auth.revoke_keys(s, args.name)
        if not revoked:
            print(f"no active API key named {args.name!r} in domain {s.domain}", file=sys.stderr)
            return 1
        print(f"revoked {revoked} key(s) named {args.name!r}; running API processes refuse them at once "
              f"(within {auth.KEY_CACHE_SECONDS:g} s if they cannot reach Redis)", file=sys.stderr)
        return 0
    key = auth.create_key(s, args.name)
    print(f"created API key {args.name!r} for domain {s.domain}; it is shown once:", file=sys.stderr)
    print(key)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from embed_worker.pipeline import embed_command

    s = _settings()
    if not _has_database(s):
        return 2
    result = embed_command(s, reembed=args.reembed, everything=args.all)
    print(json.dumps(result, indent=2))
    return 0 if not result.get("unavailable") else 1


def cmd_redrive(args: argparse.Namespace) -> int:
    from ingest_worker.redrive import redrive

    s = _settings()
    if not _has_database(s):
        return 2
    result = redrive(s, args.source)
    print(json.dumps(result.__dict__, indent=2))
    return 0


def cmd_entities(args: argparse.Namespace) -> int:
    from resolve_worker import manual

    s = _settings()
    if not _has_database(s):
        return 2
    try:
        if args.entities_command == "resolve":
            from resolve_worker import entities

            result = entities.resolve_all(s, full=args.full).__dict__
        elif args.entities_command == "merge":
            result = manual.merge(s, args.keep, args.other)
        elif args.entities_command == "split":
            result = manual.split(s, args.entity, [tuple(k.split("/", 2)) for k in args.identity])
        else:
            result = manual.pin(s, tuple(args.identity.split("/", 2)), args.entity)
    except (manual.OverrideError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from honcho.environ import parse_procfile
    from honcho.manager import Manager

    s = _settings()
    with _stack_if_needed(s) as s:
        migrate(s)
        env = {**os.environ, **_process_env(s)}
        # the Procfile names `celery` and `gunicorn`: find ours even when the venv is not activated
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if s.flower_basic_auth:  # resolved from PAYREADY_FLOWER_BASIC_AUTH_FILE too
            env["PAYREADY_FLOWER_BASIC_AUTH"] = s.flower_basic_auth
        procfile = parse_procfile((ROOT / "Procfile").read_text())
        manager = Manager()
        for name, entry in procfile.processes.items():
            manager.add_process(name, entry, env=_process_group_env(s, name, env), cwd=str(ROOT))
        print(f"API on http://{s.api_host}:{s.api_port}  Flower on http://{s.flower_host}:{s.flower_port}  "
              f"worker metrics on :{_metrics_base(s)}-{_metrics_base(s) + 2}", file=sys.stderr)
        manager.loop()  # returns when any process dies or on SIGINT/SIGTERM, after stopping all
        return manager.returncode or 0


# Worker metrics ports under `up`: PAYREADY_METRICS_PORT (default 9101) for ingest, +1, +2.
_WORKER_METRICS_OFFSET = {"ingest": 0, "resolve": 1, "embed": 2}


def _metrics_base(s: Settings) -> int:
    return s.metrics_port or 9101


def _process_group_env(s: Settings, name: str, env: dict[str, str]) -> dict[str, str]:
    """One fresh Prometheus multiprocess directory per Procfile process; a port per worker type."""
    import shutil

    folder = s.data_dir / "metrics" / name
    shutil.rmtree(folder, ignore_errors=True)  # files of a previous run would be summed in
    folder.mkdir(parents=True)
    out = {**env, "PROMETHEUS_MULTIPROC_DIR": str(folder.resolve())}
    if name in _WORKER_METRICS_OFFSET:
        out["PAYREADY_METRICS_PORT"] = str(_metrics_base(s) + _WORKER_METRICS_OFFSET[name])
    return out


def cmd_proc(args: argparse.Namespace) -> int:
    """Run one Procfile process in the foreground (containers: one process each, same commands)."""
    from honcho.environ import parse_procfile

    entries = parse_procfile((ROOT / "Procfile").read_text()).processes
    if args.name not in entries:
        print(f"no process {args.name!r} in the Procfile; known: {', '.join(entries)}", file=sys.stderr)
        return 2
    s = _settings()
    env = {**os.environ}
    if s.flower_basic_auth:
        env["PAYREADY_FLOWER_BASIC_AUTH"] = s.flower_basic_auth  # resolved from the _FILE variant too
    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        import shutil

        folder = Path(env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(folder, ignore_errors=True)  # a restarted container must not sum old files
        folder.mkdir(parents=True)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    os.chdir(ROOT)
    os.execvpe("/bin/sh", ["/bin/sh", "-c", "exec " + entries[args.name]], env)
    return 0  # not reached


def _process_env(s: Settings) -> dict[str, str]:
    env = {"PAYREADY_DOMAIN": s.domain, "PAYREADY_DATA_DIR": str(s.data_dir)}
    for var, value in (("PAYREADY_DATABASE_URL", s.database_url), ("PAYREADY_REDIS_URL", s.redis_url),
                       ("PAYREADY_BROKER_URL", s.broker_url), ("PAYREADY_REDIS_PREFIX", s.redis_prefix)):
        if value:
            env[var] = value
    return env


class _stack_if_needed:
    """Start the embedded stack for the duration of a command when no URLs are configured."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stack: Optional[embedded.EmbeddedStack] = None

    def __enter__(self) -> Settings:
        if self.settings.database_url and self.settings.redis_url:
            return self.settings
        self.stack = embedded.EmbeddedStack(self.settings.data_dir)
        urls = self.stack.start()
        # SIGTERM must unwind through __exit__ so the servers stop cleanly
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        s = _settings(urls.as_env())
        _configure_celery(s)
        return s

    def __exit__(self, *exc: object) -> None:
        if self.stack is not None:
            self.stack.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    from common import demo

    s = _settings()
    if not (s.database_url and s.redis_url):
        s = settings_mod._replace(s, data_dir=s.data_dir / "demo")
        if not args.keep:
            embedded.remove_data(s.data_dir)
    started = time.perf_counter()
    with _stack_if_needed(s) as s:
        summary = demo.run(s, progress=lambda msg: print(msg, file=sys.stderr))
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(demo.render(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["run"]["status"] == "succeeded" else 1


def cmd_mcp(args: argparse.Namespace) -> int:
    from api import mcp_server

    s = _settings()
    if not _has_database(s):
        return 2
    # stdout carries the protocol: everything else goes to stderr
    mcp_server.serve(s, args.transport, args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="payready", description="Pay Ready domain ETL & AI")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole stack in the foreground (Ctrl-C stops it)").set_defaults(fn=cmd_up)
    d = sub.add_parser("demo", help="one full sync of the sample through real workers, then a summary")
    d.add_argument("--keep", action="store_true", help="keep the demo data folder from the last run")
    d.add_argument("--json", metavar="FILE", help="also write the summary as JSON to FILE")
    d.set_defaults(fn=cmd_demo)
    sy = sub.add_parser("sync", help="start a sync run on the running stack")
    sy.add_argument("--source", action="append", choices=("gong", "slack", "hubspot", "salesforce"))
    sy.add_argument("--wait", action="store_true", help="block until the run ends")
    sy.add_argument("--json", action="store_true", help="print the run as JSON")
    sy.add_argument("--full-refresh", action="store_true", help="re-read everything from the start")
    sy.add_argument("--timeout", type=_at_least(0.001, float), default=3600.0, help="seconds --wait waits")
    sy.set_defaults(fn=cmd_sync)
    pr = sub.add_parser("proc", help="run one Procfile process in the foreground (containers)")
    pr.add_argument("name", help="web, ingest, resolve, embed, beat or flower")
    pr.set_defaults(fn=cmd_proc)
    sub.add_parser("migrate", help="create or upgrade the domain schema").set_defaults(fn=cmd_migrate)
    g = sub.add_parser("generate", help="write sample landing data (files layout) and ground truth")
    g.add_argument("--out", required=True)
    g.add_argument("--scale", type=_at_least(1), default=1, help="units of sample data (1 is about 1,500 records)")
    g.add_argument("--seed", type=int, default=7)
    g.set_defaults(fn=cmd_generate)
    st = sub.add_parser("status", help="the state of the stack")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
    k = sub.add_parser("keys", help="API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create an API key for this domain")
    kc.add_argument("--name", required=True, type=_key_name, help="who holds it; the audit log's actor")
    kc.set_defaults(fn=cmd_keys)
    kr = ksub.add_parser("revoke", help="revoke every active key of this name")
    kr.add_argument("--name", required=True)
    kr.set_defaults(fn=cmd_keys)
    kl = ksub.add_parser("list", help="this domain's keys (names and dates, never the keys)")
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(fn=cmd_keys)
    dl = sub.add_parser("deadletters", help="dead-lettered records")
    dlsub = dl.add_subparsers(dest="deadletters_command", required=True)
    rd = dlsub.add_parser("redrive", help="run dead letters through the processors again (after a fix)")
    rd.add_argument("--source", choices=("gong", "slack", "hubspot", "salesforce"))
    rd.set_defaults(fn=cmd_redrive)
    en = sub.add_parser("entities", help="manual entity-resolution overrides (kept by every later run)")
    ensub = en.add_subparsers(dest="entities_command", required=True)
    em = ensub.add_parser("merge", help="merge entity OTHER into entity KEEP")
    em.add_argument("keep")
    em.add_argument("other")
    es = ensub.add_parser("split", help="move identities (source/source_type/source_id) out of an entity")
    es.add_argument("entity")
    es.add_argument("identity", nargs="+")
    ep = ensub.add_parser("pin", help="pin an identity (source/source_type/source_id) to an entity")
    ep.add_argument("identity")
    ep.add_argument("entity")
    er = ensub.add_parser("resolve", help="run entity resolution now (what a sync's resolve phase does)")
    er.add_argument("--full", action="store_true",
                    help="re-cluster every identity and re-derive every interaction's links (the repair path)")
    en.set_defaults(fn=cmd_entities)
    eb = sub.add_parser("embed", help="embed pending chunks now; --reembed after a model change")
    eb.add_argument("--reembed", action="store_true",
                    help="first make pending every chunk embedded by another model than the configured one")
    eb.add_argument("--all", action="store_true", help="with --reembed: every chunk, whatever its model")
    eb.set_defaults(fn=cmd_embed)
    mc = sub.add_parser("mcp", help="serve the MCP tools (stdio by default) for AI assistants")
    mc.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    mc.add_argument("--host", default="127.0.0.1", help="streamable-http bind address")
    mc.add_argument("--port", type=_port, default=8765, help="streamable-http port")
    mc.set_defaults(fn=cmd_mcp)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("PAYREADY_LOG_LEVEL", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
