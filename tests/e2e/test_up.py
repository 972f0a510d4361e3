"""`payready up`: the whole stack in the foreground from the Procfile, stopped by SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tests.conftest import ROOT, free_port


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


def test_up_serves_api_and_flower_and_stops_everything_on_sigterm(tmp_path):
    api_port, flower_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYREADY_")}
    env.update(PAYREADY_DATA_DIR=str(tmp_path / "data"), PAYREADY_API_PORT=str(api_port),
               PAYREADY_FLOWER_PORT=str(flower_port))
    log = open(tmp_path / "up.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "common.cli", "up"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        ready = {}
        while time.monotonic() < deadline and len(ready) < 3:
            for name, url in (("api", f"http://127.0.0.1:{api_port}/healthz"),
                              ("readyz", f"http://127.0.0.1:{api_port}/readyz"),
                              ("flower", f"http://127.0.0.1:{flower_port}/healthcheck")):
                if name not in ready:
                    try:
                        ready[name] = _get(url)
                    except OSError:
                        pass
            assert proc.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(0.5)
        assert ready.get("api", (0,))[0] == 200, (tmp_path / "up.log").read_text()[-3000:]
        assert json.loads(ready["readyz"][1])["status"] == "ready"
        assert ready["flower"][0] == 200
        stack = json.loads((tmp_path / "data" / "stack.json").read_text())
        assert stack["owner_pid"] == proc.pid
        # another command finds the stack through the data folder and says it is the embedded one
        shown = subprocess.run([sys.executable, "-m", "common.cli", "status", "--json"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
        report = json.loads(shown.stdout)
        assert shown.returncode == 0 and report["database"]["ok"], shown.stderr[-2000:]
        assert report["embedded"] is True and report["urls"]["database"] == stack["database_url"]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert not (tmp_path / "data" / "stack.json").exists(), "the embedded stack was shut down"
    for port in (api_port, flower_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after SIGTERM"
