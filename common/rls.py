"""Row-level security between domains (DESIGN §10).

Every domain lives in its own schema, and every connection of a domain's processes says which
domain it serves: ``common.db`` sets ``app.domain`` (and ``search_path``) when it connects. Each
table of schema ``X`` has RLS enabled and *forced* (the owner is bound too) with the policy
``domain_isolation``: a row is visible and writable only when ``app.domain = 'X'``. A connection
serving domain A that names ``B.interactions`` outright, or adds any WHERE it likes, reads nothing.

Superusers and BYPASSRLS roles skip policies by Postgres' rules, so the API runs as its own
ordinary role (:func:`create_service_role`). ``app.domain`` is a session setting: this guards
against the service's own mistakes (a wrong schema, a forged filter, a query reaching across),
not against a role that can run SQL of its choosing; give each domain's role USAGE on its schema
only, as :func:`create_service_role` does.
"""
from __future__ import annotations

import sqlalchemy as sa

SETTING = "app.domain"
POLICY = "domain_isolation"


def tables(conn: sa.engine.Connection, schema: str) -> list[str]:
    return list(conn.execute(sa.text(
        "SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename <> 'alembic_version' ORDER BY 1"),
        {"s": schema}).scalars())


def protect_table(conn: sa.engine.Connection, schema: str, table: str) -> None:
    """Enable and force RLS on ``schema.table`` with the domain policy (idempotent)."""
    name = f'"{schema}"."{table}"'
    literal = schema.replace("'", "''")
    conn.execute(sa.text(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"))
    conn.execute(sa.text(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY"))
    conn.execute(sa.text(f"DROP POLICY IF EXISTS {POLICY} ON {name}"))
    conn.execute(sa.text(
        f"CREATE POLICY {POLICY} ON {name} USING (current_setting('{SETTING}', true) = '{literal}') "
        f"WITH CHECK (current_setting('{SETTING}', true) = '{literal}')"))


def unprotect_table(conn: sa.engine.Connection, schema: str, table: str) -> None:
    name = f'"{schema}"."{table}"'
    conn.execute(sa.text(f"DROP POLICY IF EXISTS {POLICY} ON {name}"))
    conn.execute(sa.text(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY"))
    conn.execute(sa.text(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY"))


def unprotected_tables(conn: sa.engine.Connection, schema: str) -> list[str]:
    """Tables of the schema without forced RLS and the domain policy."""
    return list(conn.execute(sa.text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version' "
        "AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS "
        "(SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = :policy)) ORDER BY 1"),
        {"s": schema, "policy": POLICY}).scalars())


def protect_schema(conn: sa.engine.Connection, schema: str) -> list[str]:
    """Protect every table not yet protected (``payready migrate`` ends with this, so a table a
    later migration adds is covered too); returns the tables it changed."""
    names = unprotected_tables(conn, schema)
    for table in names:
        protect_table(conn, schema, table)
    return names


def create_service_role(conn: sa.engine.Connection, role: str, password: str, schema: str) -> None:
    """A LOGIN role for one domain's API/workers: no superuser, no BYPASSRLS, its schema only."""
    conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD :pw'
                         .replace(":pw", "'" + password.replace("'", "''") + "'")))
    grant_schema(conn, role, schema)


def grant_schema(conn: sa.engine.Connection, role: str, schema: str) -> None:
    conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
    conn.execute(sa.text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
    conn.execute(sa.text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"'))
