"""The migration chain builds the schema from empty, matches the models, and downgrades to base."""
from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from common import db
from common.models import Base, vector_table
from tests.conftest import ROOT, activate, drop_domain, make_settings


def _alembic(settings):
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.attributes["settings"] = settings
    return cfg


def _drift(settings, with_vectors: bool) -> list:
    metadata = Base.metadata
    if with_vectors:
        vector_table(metadata)
    with db.transaction(settings) as conn:
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_object": lambda obj, name, type_, refl, other: not (
                type_ == "table" and name in ("alembic_version",) or
                (not with_vectors and type_ == "table" and name == "chunk_vectors"))})
        return compare_metadata(ctx, metadata)


def _tables(settings) -> set[str]:
    with db.transaction(settings) as conn:
        return set(conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": settings.schema}).scalars())


def _roundtrip(urls, expect_vectors: bool) -> None:
    settings = make_settings(urls, f"m_{uuid.uuid4().hex[:8]}")
    activate(settings)
    try:
        cfg = _alembic(settings)
        command.upgrade(cfg, "head")
        tables = _tables(settings)
        assert {"data_sources", "sync_state", "sync_runs", "interactions", "participants", "chunks", "persons",
                "companies", "entity_mappings", "analytics_cache", "dead_letters", "audit_log",
                "api_keys"} <= tables
        assert ("chunk_vectors" in tables) is expect_vectors
        assert _drift(settings, with_vectors=expect_vectors) == []
        command.downgrade(cfg, "base")
        assert _tables(settings) <= {"alembic_version"}
        command.upgrade(cfg, "head")  # and up again: downgrade left nothing behind that blocks it
        assert "interactions" in _tables(settings)
    finally:
        drop_domain(settings)


def test_upgrade_matches_models_and_downgrades_with_pgvector(stack_urls):
    with db.transaction(make_settings(stack_urls, "probe")) as conn:
        if not db.has_pgvector(conn):
            pytest.skip("this Postgres has no pgvector")
    _roundtrip(stack_urls, expect_vectors=True)


def test_upgrade_on_postgres_without_pgvector(stack_urls):
    """The system's other supported Postgres: no extension, no chunk_vectors, same schema otherwise."""
    url = os.environ.get("PAYREADY_TEST_PLAIN_DATABASE_URL")
    if not url:
        pytest.skip("PAYREADY_TEST_PLAIN_DATABASE_URL not set (a Postgres without pgvector)")
    urls = stack_urls.__class__(database_url=url, redis_url=stack_urls.redis_url,
                                broker_url=stack_urls.broker_url, owner_pid=stack_urls.owner_pid)
    with db.transaction(make_settings(urls, "probe")) as conn:
        if db.has_pgvector(conn):
            pytest.skip("that Postgres has pgvector after all")
    _roundtrip(urls, expect_vectors=False)
