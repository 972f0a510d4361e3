"""Set-based writes: a batch's rows travel as one JSON array read by ``json_to_recordset``.

One round trip and one statement per table per batch instead of one per row, no temporary tables,
and no COPY (Postgres refuses ``COPY FROM`` into tables with row-level security, which every
domain table has: ``common/rls.py``). Serialised by orjson: the ingest writer and the resolver
both send tens of thousands of rows per run this way.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

import orjson
import sqlalchemy as sa


def payload(rows: list[dict]) -> str:
    """JSON text of ``rows`` for ``json_to_recordset``; orjson, or the standard encoder for what
    orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(rows, default=str).decode()
    except TypeError:
        return json.dumps(rows, default=str)


def execute(conn: sa.engine.Connection, sql: str, rows: list[dict], **params: Any) -> list:
    """Run ``sql`` with ``%(rows)s`` bound to the JSON of ``rows``; returns fetched rows if any."""
    result = conn.exec_driver_sql(sql, {"rows": payload(rows), **params})
    return result.all() if result.returns_rows else []


def record_type(columns: Iterable[tuple[str, str]]) -> str:
    """``name type, ...``: the column list after ``json_to_recordset(...) AS r(``."""
    return ", ".join(f"{name} {kind}" for name, kind in columns)


def distinct(table: str, new: dict[str, str]) -> str:
    """``(t.a, t.b) IS DISTINCT FROM (<new a>, <new b>)``: true only when something changes."""
    return (f"({', '.join(f'{table}.{c}' for c in new)}) IS DISTINCT FROM ({', '.join(new.values())})")
