"""Engines and transactions. Every connection is pinned to the domain schema via search_path."""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from common.settings import ConfigError, Settings

_engines: dict[tuple[str, str], Engine] = {}
_lock = threading.Lock()


def sqlalchemy_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, schema: str, pool_size: int = 5) -> Engine:
    engine = sa.create_engine(sqlalchemy_url(url), pool_size=pool_size, max_overflow=10,
                              pool_pre_ping=True, future=True)

    @sa.event.listens_for(engine, "connect")
    def _pin_schema(dbapi_conn, _record):  # noqa: ANN001
        # public stays on the path for the pgvector type and operators.
        with dbapi_conn.cursor() as cur:
            cur.execute(f'SET search_path TO "{schema}", public')
            # the domain row-level security policies admit (common/rls.py)
            cur.execute("SELECT set_config('app.domain', %s, false)", (schema,))
        dbapi_conn.commit()

    return engine


def engine_for(settings: Settings) -> Engine:
    """One pooled engine per (URL, schema) per process; forked workers must call dispose()."""
    if not settings.database_url:
        raise ConfigError("PAYREADY_DATABASE_URL is not set and no embedded stack is running "
                          f"under PAYREADY_DATA_DIR={settings.data_dir}")
    key = (settings.database_url, settings.schema)
    with _lock:
        if key not in _engines:
            _engines[key] = make_engine(settings.database_url, settings.schema)
        return _engines[key]


def dispose_all() -> None:
    """Drop pooled connections (after fork: a child must never reuse its parent's sockets)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


@contextlib.contextmanager
def transaction(settings: Settings) -> Iterator[Connection]:
    with engine_for(settings).begin() as conn:
        yield conn


def has_pgvector(conn: Connection) -> bool:
    """Whether the vector extension is installed, or installable here."""
    installed = conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
    if installed:
        return True
    available = conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    return available is not None


def vector_ready(conn: Connection) -> bool:
    """Whether chunk_vectors exists in this domain (pgvector present at migration time)."""
    return conn.execute(sa.text("SELECT to_regclass('chunk_vectors') IS NOT NULL")).scalar()


def current_revision(conn: Connection) -> Optional[str]:
    exists = conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar()
    if not exists:
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
