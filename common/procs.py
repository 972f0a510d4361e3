"""Starting and stopping the stack's processes (workers, API) as subprocesses, by PID."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from common.settings import Settings

# Processes per worker type for `demo` and tests: 2 cores, four sources.
DEFAULT_CONCURRENCY = {"ingest": 2, "resolve": 1, "embed": 1}


def worker_command(settings: Settings, phase: str, concurrency: Optional[int] = None,
                   name: Optional[str] = None) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "common.celery_app", "worker",
            "-Q", settings.queue(phase), "-n", f"{name or phase}-{os.getpid()}@%h",
            "--concurrency", str(concurrency or DEFAULT_CONCURRENCY.get(phase, 1)),
            "--loglevel", settings.log_level, "-E", "--without-gossip", "--without-mingle"]


def start(cmd: list[str], env: dict[str, str], log_path: Optional[Path] = None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    full_env = {**os.environ, **env}
    return subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (Celery's warm shutdown), then SIGKILL the whole group if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def wait_for_workers(app, queues: list[str], timeout: float = 60.0) -> None:  # noqa: ANN001
    """Block until every queue has a consumer that answers a ping."""
    deadline = time.monotonic() + timeout
    missing = set(queues)
    while time.monotonic() < deadline:
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
        seen = {q["name"] for qs in replies.values() for q in qs}
        missing = set(queues) - seen
        if not missing:
            return
        time.sleep(0.3)
    raise TimeoutError(f"no worker consumes {sorted(missing)} after {timeout:.0f}s")
