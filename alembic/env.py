"""Alembic environment: migrates one domain's schema, named by PAYREADY_DOMAIN.

The schema is created if missing and every statement runs with search_path set to it, so the
migrations carry no schema names and serve every domain; ``alembic_version`` lands in that schema
the same way (naming it explicitly would make autogenerate see it as a foreign table).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from common import embedded, settings as settings_mod
from common.db import make_engine
from common.models import Base


def _settings():
    given = context.config.attributes.get("settings")
    return given or embedded.resolve_urls(settings_mod.get())


def run_migrations_online() -> None:
    settings = _settings()
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection, settings.schema)
        return
    engine = make_engine(settings.database_url, settings.schema, pool_size=1)
    try:
        with engine.connect() as conn:
            _run(conn, settings.schema)
            conn.commit()
    finally:
        engine.dispose()


def _run(connection: sa.engine.Connection, schema: str) -> None:
    connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(sa.text(f'SET search_path TO "{schema}", public'))
    connection.execute(sa.text("SELECT set_config('app.domain', :d, false)"), {"d": schema})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def _include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
    # chunk_vectors exists only with pgvector; the drift test adds it to the models when it does.
    return not (type_ == "table" and name == "chunk_vectors" and name not in Base.metadata.tables)


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported: run `payready migrate`")
run_migrations_online()
