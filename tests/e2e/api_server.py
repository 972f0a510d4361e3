"""The API as a real gunicorn subprocess for e2e tests, and a small JSON client for it."""
from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from common import procs
from tests.conftest import free_port


class Client:
    def __init__(self, base: str, key: str | None = None):
        self.base, self.key = base, key

    def call(self, method: str, path: str, body: dict | bytes | None = None, key: str | None = "default"):
        """(status, JSON body); ``body`` is sent as JSON, or as it is when bytes."""
        key = self.key if key == "default" else key
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, method=method, data=data)
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                self.last_headers = resp.headers
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            self.last_headers = err.headers
            return err.code, json.loads(err.read() or b"null")


@contextlib.contextmanager
def running_api(env: dict, log: Path, *gunicorn_args: str) -> Iterator[str]:
    """``gunicorn api:create_app()`` on a free loopback port until the block ends; yields its base URL."""
    port = free_port()
    proc = procs.start([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *gunicorn_args,
                        "api:create_app()"], env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        procs.stop(proc)
