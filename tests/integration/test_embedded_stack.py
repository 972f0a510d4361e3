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
