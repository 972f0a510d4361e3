"""``airbyte`` landing: read records from the tables the Airbyte Postgres destination writes.

Layouts (shared/airbyte/README.md §2): ``final`` = 3.x direct-load typed tables (one per stream,
data columns + ``_airbyte_raw_id/_extracted_at/_meta/_generation_id``); ``raw`` = legacy raw tables
(``_airbyte_data`` jsonb, append-only).

Reading (DESIGN §4). Rows are read in ``(_airbyte_extracted_at, _airbyte_raw_id)`` order (raw_id
compared with ``COLLATE "C"``, i.e. code-point order, the same as Python's), starting at
``cursor.extracted_at - lookback`` and keyset-paginated within one read. A row whose key is at or
before the saved cursor is skipped only if its raw_id is in ``seen_ids`` (known delivered);
otherwise it is a *late* row (committed after our read with an older extracted_at) and is
delivered. Rows after the cursor (incl. rows tied on extracted_at with a greater raw_id) are always
delivered. Late rows older than the look-back window are not seen: size the look-back to cover the
longest sync. Without ``seen_ids`` look-back rows are re-delivered (at-least-once; the upserts make
that harmless).

``seen_ids``: a batch's raw_ids are added when the caller asks for the *next* batch (or the read
ends), i.e. after the loop body that committed it returned; a body that raises leaves them out, so
a rolled-back late row is not wrongly skipped later. Keep one set per stream for the process.

The caller saves ``batch.cursor_after`` with :func:`save_cursor` in the same transaction as the
rows of the batch. ``position`` of every record is its ``_airbyte_raw_id`` (str): the record's
stable address (dead-letter ``record_key``).

Generation: if the table's max ``_airbyte_generation_id`` differs from (normally: is greater than)
``cursor.generation_id``, a refresh/clear replaced the data: the read starts from the beginning of
the table, ignores the saved cursor and ``seen_ids`` (every current row is delivered once more, even
rows retained from older generations), the first batch has ``generation_rose=True`` and
``cursor_after`` restarts from the rows of this read with the new generation. A read interrupted
after committing a batch resumes normally from its cursor. An empty table (a clear that wrote
nothing) shows no generation: nothing is read and the cursor stays; the rise is seen with its rows.

Schema churn: final-table data columns are discovered from ``information_schema`` for every page,
so added/dropped columns are not errors. A missing table yields nothing.

Naming: :func:`final_table_name` / :func:`raw_table_name` follow the destination's
``toPostgresCompatibleName`` (NFKD, combining marks dropped, whitespace runs and chars outside
``[A-Za-z0-9_]`` -> ``_``, leading digit -> ``_`` prefix, >63 chars -> first 54 + ``_`` + hash).
The hash is the destination's: Java ``String.hashCode()`` of the sanitized name, as a signed decimal,
last 8 characters (``transformed.hashCode().toString().takeLast(8)`` in
``PostgresFinalTableNameGenerator.kt``).
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ingest_worker.landing import LandedRecord

MAX_IDENT = 63
META_PREFIX = "_airbyte_"
UTC = dt.timezone.utc


# --------------------------------------------------------------------------------------- naming
def _java_hash(text: str) -> int:
    data, h = text.encode("utf-16-be"), 0  # over UTF-16 code units, like Java
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def postgres_compatible_name(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("M"))
    text = re.sub(r"\s+", "_", text)
    text = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if text and text[0].isdigit():
        text = "_" + text
    if not text:
        raise ValueError(f"name {name!r} has no usable characters")  # Airbyte: random name
    if len(text) > MAX_IDENT:
        text = text[:54] + "_" + str(_java_hash(text))[-8:]
    return text


def final_table_name(stream: str) -> str:
    """The 3.x direct-load final table of ``stream`` (case preserved; quote it)."""
    return postgres_compatible_name(stream)


def raw_table_name(namespace: str, stream: str) -> str:
    """``<namespace>_raw_<__..>stream_<stream>``, lower-cased (3.x legacy raw-table mode)."""
    runs = [len(m) for m in re.findall(r"_+", namespace + stream)]
    underscores = "_" * (max(runs + [1]) + 1)
    return postgres_compatible_name(f"{namespace}_raw{underscores}stream_{stream}".lower())


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------- cursor
@dataclass
class AirbyteCursor:
    extracted_at: Optional[dt.datetime] = None
    raw_id: Optional[str] = None
    generation_id: Optional[int] = None

    def key(self) -> Optional[tuple[dt.datetime, str]]:
        if self.extracted_at is None:
            return None
        return (_aware(self.extracted_at), self.raw_id or "")


@dataclass
class AirbyteBatch:
    stream: str
    records: list[LandedRecord]
    cursor_after: AirbyteCursor
    generation_rose: bool = False
    # (raw_id, reason, raw text): rows that are not even a record (raw layout, non-object data)
    malformed: list[tuple[str, str, str]] = field(default_factory=list)


def load_cursor(conn: Connection, source: str, stream: str) -> AirbyteCursor:
    row = conn.execute(sa.text(
        "SELECT cursor_extracted_at, cursor_raw_id, generation_id FROM sync_state "
        "WHERE source = :source AND stream = :stream"), {"source": source, "stream": stream}).first()
    if row is None:
        return AirbyteCursor()
    return AirbyteCursor(row[0], row[1], row[2])


def save_cursor(conn: Connection, source: str, stream: str, cursor: AirbyteCursor,
                records: int = 0) -> None:
    """Upsert the checkpoint; call it in the transaction that wrote the batch's rows."""
    conn.execute(sa.text(
        "INSERT INTO sync_state (source, stream, cursor_extracted_at, cursor_raw_id, generation_id,"
        " records_total, updated_at) VALUES (:source, :stream, :at, :rid, :gen, :n, now()) "
        "ON CONFLICT (source, stream) DO UPDATE SET cursor_extracted_at = EXCLUDED.cursor_extracted_at,"
        " cursor_raw_id = EXCLUDED.cursor_raw_id, generation_id = EXCLUDED.generation_id,"
        " records_total = sync_state.records_total + EXCLUDED.records_total, updated_at = now()"),
        {"source": source, "stream": stream, "at": cursor.extracted_at, "rid": cursor.raw_id,
         "gen": cursor.generation_id, "n": records})


# --------------------------------------------------------------------------------------- reading
def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _columns(conn: Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(sa.text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
        "ORDER BY ordinal_position"), {"s": schema, "t": table})
    return [r[0] for r in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return value


def _as_json(value: Any) -> Any:
    if isinstance(value, str):  # jsonb arrives parsed; tolerate json/text columns too
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def read_batches(conn: Connection, schema: str, stream: str, cursor: Optional[AirbyteCursor],
                 batch_size: int, lookback_seconds: float, layout: str = "final",
                 seen_ids: Optional[set] = None, namespace: Optional[str] = None,
                 table: Optional[str] = None) -> Iterator[AirbyteBatch]:
    """Batches of landed rows of ``stream`` after ``cursor`` (see the module doc).

    ``schema`` is the Postgres schema holding the table: the stream namespace / destination schema
    for ``final``, the raw schema (``airbyte_internal``) for ``raw``. ``namespace`` names the raw
    table (default: ``public``). ``table`` overrides the computed table name.
    """
    if layout not in ("final", "raw"):
        raise ValueError(f"layout must be 'final' or 'raw', not {layout!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    cursor = cursor or AirbyteCursor()
    if table is None:
        table = final_table_name(stream) if layout == "final" else raw_table_name(namespace or "public", stream)
    columns = _columns(conn, schema, table)
    if not columns:
        return  # not synced yet
    qualified = f"{quote_ident(schema)}.{quote_ident(table)}"

    max_gen = None
    if "_airbyte_generation_id" in columns:
        max_gen = conn.execute(sa.text(f"SELECT max(_airbyte_generation_id) FROM {qualified}")).scalar()
        max_gen = int(max_gen) if max_gen is not None else None
    rose = (max_gen is not None and cursor.generation_id is not None and max_gen != cursor.generation_id)
    generation = max_gen if max_gen is not None else cursor.generation_id

    saved = None if rose else cursor.key()
    start_at = None if saved is None else saved[0] - dt.timedelta(seconds=lookback_seconds)
    known: set = set() if (rose or seen_ids is None) else seen_ids
    after: Optional[tuple[dt.datetime, str]] = None  # keyset position within this read
    best = saved  # cursor_after never goes back (except on a generation rise: starts afresh)
    pending: list[str] = []  # ids of the last yielded batch, added to seen_ids on resume
    records: list[LandedRecord] = []
    malformed: list[tuple[str, str, str]] = []
    first = True

    while True:
        page = _fetch_page(conn, schema, table, qualified, layout, start_at, after, batch_size)
        for row in page:
            key = (_aware(row["_airbyte_extracted_at"]), row["_airbyte_raw_id"])
            after = key
            if saved is not None and key <= saved and key[1] in known:
                continue  # boundary dedup: delivered by an earlier read
            best = key if best is None or key > best else best
            _convert(row, layout, records, malformed)
        full = len(page) >= batch_size
        if records or malformed:
            batch = AirbyteBatch(stream, records, _cursor(best, generation), rose and first, malformed)
            ids = [r.position for r in records] + [m[0] for m in malformed]
            if seen_ids is not None and pending:
                seen_ids.update(pending)
            pending = ids
            yield batch
            records, malformed, first = [], [], False
        if not full:
            break
    if seen_ids is not None and pending:
        seen_ids.update(pending)


def _cursor(key: Optional[tuple[dt.datetime, str]], generation: Optional[int]) -> AirbyteCursor:
    if key is None:
        return AirbyteCursor(None, None, generation)
    return AirbyteCursor(key[0], key[1], generation)


def _fetch_page(conn: Connection, schema: str, table: str, qualified: str, layout: str,
                start_at: Optional[dt.datetime], after: Optional[tuple[dt.datetime, str]],
                limit: int) -> list[dict[str, Any]]:
    columns = _columns(conn, schema, table)  # per page: tolerate ALTER TABLE between pages
    if layout == "raw":
        data_cols = ["_airbyte_data"]
    else:
        data_cols = [c for c in columns if not c.startswith(META_PREFIX)]
    meta = ["_airbyte_raw_id", "_airbyte_extracted_at"]
    if "_airbyte_meta" in columns:
        meta.append("_airbyte_meta")
    select = ", ".join(quote_ident(c) for c in meta + data_cols)
    where, params = [], {"limit": limit}
    if start_at is not None:
        where.append("_airbyte_extracted_at >= :start_at")
        params["start_at"] = start_at
    if after is not None:
        where.append('(_airbyte_extracted_at, _airbyte_raw_id COLLATE "C") > (:after_at, :after_id COLLATE "C")')
        params["after_at"], params["after_id"] = after
    sql = (f"SELECT {select} FROM {qualified}" + (" WHERE " + " AND ".join(where) if where else "")
           + ' ORDER BY _airbyte_extracted_at, _airbyte_raw_id COLLATE "C" LIMIT :limit')
    result = conn.execute(sa.text(sql), params)
    names = list(result.keys())
    return [dict(zip(names, row)) for row in result]


def _changes(meta: Any) -> list:
    meta = _as_json(meta)
    changes = meta.get("changes") if isinstance(meta, dict) else None
    return changes if isinstance(changes, list) else []


def _convert(row: dict[str, Any], layout: str, records: list[LandedRecord],
             malformed: list[tuple[str, str, str]]) -> None:
    raw_id = row["_airbyte_raw_id"]
    emitted = int(_aware(row["_airbyte_extracted_at"]).timestamp() * 1000)
    if layout == "raw":
        data = _as_json(row.get("_airbyte_data"))
        if not isinstance(data, dict):
            malformed.append((raw_id, "_airbyte_data is not a JSON object",
                              json.dumps(data, default=str)[:10_000]))
            return
        data = dict(data)
    else:
        data = {k: _plain(v) for k, v in row.items()
                if not k.startswith(META_PREFIX)}
    changes = _changes(row.get("_airbyte_meta"))
    if changes:
        data["_airbyte_changes"] = changes
    records.append(LandedRecord(raw_id, data, emitted))

