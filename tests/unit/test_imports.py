"""Every module of the packages imports on its own, in a fresh interpreter: no import cycle that only
works when another module happened to be imported first (`import common.schedule` once failed so)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("common", "api", "ingest_worker", "resolve_worker", "embed_worker")

# One fresh interpreter imports the third-party libraries (never our packages), then forks a child
# per module: each child starts with none of our modules loaded, as a fresh process would, without
# paying SQLAlchemy's and Celery's import time 90 times. Prints the modules that failed, with why.
_FORK_EACH = r"""
import importlib, os, sys, traceback
for lib in ("sqlalchemy", "celery", "kombu", "redis", "flask", "psycopg2", "alembic", "prometheus_client"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not any(m.split(".")[0] in {packages} for m in sys.modules), "a package was preloaded"
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc(limit=-4).encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        why = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        print(f"--- {{module}} (wait status {{status}})\n{{why}}")
"""


def _modules() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PAYREADY_")}


def test_common_schedule_imports_alone():
    done = subprocess.run([sys.executable, "-c", "import common.schedule"], cwd=ROOT, env=_clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_module_imports_alone():
    modules = _modules()
    assert "common.schedule" in modules and "api" in modules and len(modules) > 50
    script = _FORK_EACH.format(packages=set(PACKAGES))
    done = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, env=_clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "", f"modules that fail to import alone:\n{done.stdout[-6000:]}"
